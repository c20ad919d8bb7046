-- V001: the human-loop schema. Cases and their events, bitemporal label events, worker heartbeats.
-- Rows are never updated or deleted (V002 makes the database refuse it); a correction is a new row.

create schema human_loop;

-- One row naming this database instance, so a Delta export can tell a recreated database
-- (whose ids restart at 1) from the one it has been copying.
create table human_loop.instance (
    singleton   boolean primary key default true check (singleton),
    instance_id uuid not null default gen_random_uuid(),
    created_at  timestamptz not null default clock_timestamp()
);
insert into human_loop.instance default values;

-- Mirror of common/identity.py (ID_PATTERN and is_placeholder); tests/human_loop proves they agree.
-- Written for speed, since it guards every row of a bulk import: a length test plus an unbounded
-- class regex instead of the counted {2,63} (which compiles to a large automaton), and translate()
-- for the normalised key (the pattern admits only [A-Za-z0-9_.:-], so dropping _.:- suffices).
create function human_loop.identity_key(value text) returns text
    language sql immutable parallel safe
    return lower(translate(value, '_.:-', ''));

create function human_loop.is_valid_identity(value text) returns boolean
    language sql immutable parallel safe
    return coalesce(
        length(value) between 3 and 64
        and value ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'
        and human_loop.identity_key(value) <> all (array[
            'anonymous', 'default', 'dummy', 'empty', 'example', 'guest', 'missing', 'na', 'nan', 'nil', 'none',
            'null', 'placeholder', 'sample', 'tbd', 'test', 'testing', 'todo', 'undefined', 'unk', 'unknown', 'xxx'
        ]::text[])
        and ltrim(human_loop.identity_key(value), '0') <> ''  -- empty and all-zero keys
        and not starts_with(human_loop.identity_key(value), 'test')
        and not starts_with(human_loop.identity_key(value), 'placeholder')
        and not starts_with(human_loop.identity_key(value), 'dummy'),
        false);

-- Mirror of common/run.py RUN_ID_PATTERN.
create function human_loop.is_valid_run_id(value text) returns boolean
    language sql immutable parallel safe
    return coalesce(length(value) between 3 and 64 and value ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$', false);

-- A case is opened once, by one open_case action; its id is uuid5 of that action id (common/db/cases.py).
create table human_loop.cases (
    case_id     uuid primary key,
    action_id   text not null unique constraint cases_action_id_identity check (human_loop.is_valid_identity(action_id)),
    account_id  text not null constraint cases_account_id_identity check (human_loop.is_valid_identity(account_id)),
    event_id    text constraint cases_event_id_identity check (event_id is null or human_loop.is_valid_identity(event_id)),
    decision_id text constraint cases_decision_id_identity check (decision_id is null or human_loop.is_valid_identity(decision_id)),
    reason      text not null default '' check (length(reason) <= 2000),
    run_id      text not null constraint cases_run_id_valid check (human_loop.is_valid_run_id(run_id)),
    opened_at   timestamptz not null,
    recorded_at timestamptz not null default clock_timestamp()
);
create index cases_account_idx on human_loop.cases (account_id, recorded_at);

create table human_loop.case_events (
    case_event_id   bigint generated always as identity primary key,
    case_id         uuid not null references human_loop.cases (case_id),
    idempotency_key text not null unique constraint case_events_key_identity check (human_loop.is_valid_identity(idempotency_key)),
    kind            text not null check (kind in ('opened', 'assigned', 'note', 'closed', 'reopened')),
    actor           text not null constraint case_events_actor_identity check (human_loop.is_valid_identity(actor)),
    body            text not null default '' check (length(body) <= 10000),
    recorded_at     timestamptz not null default clock_timestamp()
);
create index case_events_case_idx on human_loop.case_events (case_id, case_event_id);

-- A case's status is derived from its newest opened/closed/reopened event, never stored and updated.
create view human_loop.case_overview as
select c.case_id, c.action_id, c.account_id, c.event_id, c.decision_id, c.reason, c.run_id,
       c.opened_at, c.recorded_at,
       case s.kind when 'closed' then 'closed' else 'open' end as status,
       s.recorded_at as status_since,
       (select count(*) from human_loop.case_events e where e.case_id = c.case_id) as event_count
from human_loop.cases c
left join lateral (
    select e.kind, e.recorded_at from human_loop.case_events e
    where e.case_id = c.case_id and e.kind in ('opened', 'closed', 'reopened')
    order by e.case_event_id desc limit 1
) s on true;

-- Bitemporal: observed_at is when the label was true, recorded_at when the database learned it.
-- label_event_id only grows in commit order (V002 serialises writers), so it is the export watermark.
create table human_loop.label_events (
    label_event_id          bigint generated always as identity primary key,
    idempotency_key         text not null unique constraint label_events_key_identity check (human_loop.is_valid_identity(idempotency_key)),
    account_id              text not null constraint label_events_account_id_identity check (human_loop.is_valid_identity(account_id)),
    event_id                text constraint label_events_event_id_identity check (event_id is null or human_loop.is_valid_identity(event_id)),
    label                   text not null constraint label_events_label_known check (label in ('fraud', 'legitimate', 'suspicious')),
    source                  text not null constraint label_events_source_known check (source in ('analyst', 'chargeback', 'customer', 'case_review')),
    actor                   text not null constraint label_events_actor_identity check (human_loop.is_valid_identity(actor)),
    observed_at             timestamptz not null,
    recorded_at             timestamptz not null default clock_timestamp(),
    corrects_label_event_id bigint,
    note                    text not null default '' check (length(note) <= 2000),
    -- a label cannot describe the future of when we learned it (5 minutes of client clock skew allowed)
    constraint label_events_observed_not_future check (observed_at <= recorded_at + interval '5 minutes'),
    constraint label_events_id_account unique (label_event_id, account_id),
    -- a correction points at an earlier event about the same account
    constraint label_events_corrects_same_account foreign key (corrects_label_event_id, account_id)
        references human_loop.label_events (label_event_id, account_id)
);
-- "Labels as of T": newest recorded_at <= T per subject (account_id, event_id); one index range per account.
create index label_events_subject_asof_idx
    on human_loop.label_events (account_id, event_id, recorded_at desc, label_event_id desc);

create table human_loop.worker_heartbeats (
    worker  text primary key constraint worker_heartbeats_worker_identity check (human_loop.is_valid_identity(worker)),
    run_id  text not null constraint worker_heartbeats_run_id_valid check (human_loop.is_valid_run_id(run_id)),
    beat_at timestamptz not null default clock_timestamp(),
    beats   bigint not null default 1 check (beats >= 1)
);
