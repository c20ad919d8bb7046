-- V004: card controls, the external effect of a block_card action (the decision lane's "no double act").
-- One row per action id, ever: the decide stream applies the effect with ON CONFLICT DO NOTHING, so a
-- replayed batch finds its controls in place. Append-only like every other truth table: a lifted block
-- would be a new row pointing at the one it lifts.

create table human_loop.card_controls (
    control_id  bigint generated always as identity primary key,
    action_id   text not null unique constraint card_controls_action_id_identity
                check (human_loop.is_valid_identity(action_id)),
    decision_id text not null constraint card_controls_decision_id_identity
                check (human_loop.is_valid_identity(decision_id)),
    card_id     text not null constraint card_controls_card_id_identity check (human_loop.is_valid_identity(card_id)),
    account_id  text not null constraint card_controls_account_id_identity
                check (human_loop.is_valid_identity(account_id)),
    control     text not null check (control in ('block')),
    reason      text not null default '' check (length(reason) <= 2000),
    run_id      text not null constraint card_controls_run_id_valid check (human_loop.is_valid_run_id(run_id)),
    recorded_at timestamptz not null default clock_timestamp()
);
create index card_controls_card on human_loop.card_controls (card_id, recorded_at);

create trigger card_controls_append_only before update or delete on human_loop.card_controls
    for each statement execute function human_loop.reject_mutation();
create trigger card_controls_no_truncate before truncate on human_loop.card_controls
    for each statement execute function human_loop.reject_mutation();
create trigger card_controls_stamp_recorded_at before insert on human_loop.card_controls
    for each row execute function human_loop.stamp_recorded_at();
alter table human_loop.card_controls enable always trigger card_controls_append_only;
alter table human_loop.card_controls enable always trigger card_controls_no_truncate;
alter table human_loop.card_controls enable always trigger card_controls_stamp_recorded_at;

grant select on human_loop.card_controls to ledgerlane_app;
grant insert (action_id, decision_id, card_id, account_id, control, reason, run_id)
    on human_loop.card_controls to ledgerlane_app;
