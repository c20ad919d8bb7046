-- V002: the database itself keeps the truth append-only and owns the clocks.
-- Triggers are ENABLE ALWAYS so they fire for every role, the owner included, and in replica mode too.

create function human_loop.reject_mutation() returns trigger
    language plpgsql as $$
begin
    raise exception using
        errcode = 'restrict_violation',
        message = format('%I.%I is append-only: %s is not allowed', tg_table_schema, tg_table_name, tg_op),
        hint = 'record a new event that points at the one it corrects';
end
$$;

-- Clients never choose when the database learned something.
create function human_loop.stamp_recorded_at() returns trigger
    language plpgsql as $$
begin
    new.recorded_at := clock_timestamp();
    return new;
end
$$;

create function human_loop.stamp_beat_at() returns trigger
    language plpgsql as $$
begin
    new.beat_at := clock_timestamp();
    return new;
end
$$;

-- One label writer at a time, taken before any identity value is drawn: ids then become visible in
-- commit order, so "everything up to the highest id I can see" is a safe export watermark.
create function human_loop.serialise_label_writers() returns trigger
    language plpgsql as $$
begin
    perform pg_advisory_xact_lock(7213400118500001);
    return null;
end
$$;

create trigger cases_append_only before update or delete on human_loop.cases
    for each statement execute function human_loop.reject_mutation();
create trigger cases_no_truncate before truncate on human_loop.cases
    for each statement execute function human_loop.reject_mutation();
create trigger cases_stamp_recorded_at before insert on human_loop.cases
    for each row execute function human_loop.stamp_recorded_at();

create trigger case_events_append_only before update or delete on human_loop.case_events
    for each statement execute function human_loop.reject_mutation();
create trigger case_events_no_truncate before truncate on human_loop.case_events
    for each statement execute function human_loop.reject_mutation();
create trigger case_events_stamp_recorded_at before insert on human_loop.case_events
    for each row execute function human_loop.stamp_recorded_at();

create trigger label_events_append_only before update or delete on human_loop.label_events
    for each statement execute function human_loop.reject_mutation();
create trigger label_events_no_truncate before truncate on human_loop.label_events
    for each statement execute function human_loop.reject_mutation();
create trigger label_events_stamp_recorded_at before insert on human_loop.label_events
    for each row execute function human_loop.stamp_recorded_at();
create trigger label_events_serialise_writers before insert on human_loop.label_events
    for each statement execute function human_loop.serialise_label_writers();

create trigger worker_heartbeats_stamp_beat_at before insert or update on human_loop.worker_heartbeats
    for each row execute function human_loop.stamp_beat_at();

alter table human_loop.cases enable always trigger cases_append_only;
alter table human_loop.cases enable always trigger cases_no_truncate;
alter table human_loop.cases enable always trigger cases_stamp_recorded_at;
alter table human_loop.case_events enable always trigger case_events_append_only;
alter table human_loop.case_events enable always trigger case_events_no_truncate;
alter table human_loop.case_events enable always trigger case_events_stamp_recorded_at;
alter table human_loop.label_events enable always trigger label_events_append_only;
alter table human_loop.label_events enable always trigger label_events_no_truncate;
alter table human_loop.label_events enable always trigger label_events_stamp_recorded_at;
alter table human_loop.label_events enable always trigger label_events_serialise_writers;
alter table human_loop.worker_heartbeats enable always trigger worker_heartbeats_stamp_beat_at;
