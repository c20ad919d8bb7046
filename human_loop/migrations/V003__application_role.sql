-- V003: the application role, with no more privileges than the workers and the CLI need.
-- NOLOGIN: a login role (the local admin, or a service user in production) is granted membership
-- and the application switches to it at connect time (common/db/connection.py).
-- Roles are cluster-wide; another database of the same cluster may have created it already.

do $$
begin
    create role ledgerlane_app nologin nosuperuser nocreatedb nocreaterole noinherit nobypassrls noreplication;
exception when duplicate_object then
    null;
end
$$;

-- The migrating role must be able to SET ROLE to it (a no-op for a superuser).
grant ledgerlane_app to current_user;

revoke all on schema human_loop from public;
revoke all on all tables in schema human_loop from public;
grant usage on schema human_loop to ledgerlane_app;
grant select on all tables in schema human_loop to ledgerlane_app;
grant select on public.schema_migrations to ledgerlane_app;

-- INSERT only on the columns a client may set: ids and recorded_at belong to the database.
grant insert (case_id, action_id, account_id, event_id, decision_id, reason, run_id, opened_at)
    on human_loop.cases to ledgerlane_app;
grant insert (case_id, idempotency_key, kind, actor, body)
    on human_loop.case_events to ledgerlane_app;
grant insert (idempotency_key, account_id, event_id, label, source, actor, observed_at,
              corrects_label_event_id, note)
    on human_loop.label_events to ledgerlane_app;
-- Heartbeats are liveness, not truth: a worker upserts its own row.
grant insert (worker, run_id), update (run_id, beats)
    on human_loop.worker_heartbeats to ledgerlane_app;
