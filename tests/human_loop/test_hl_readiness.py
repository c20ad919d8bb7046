"""Readiness: every check reported with its reason; a broken guard or stale worker fails it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from human_loop import migrate, readiness
from human_loop.connection import APP_ROLE, connect
from human_loop.heartbeats import heartbeat, heartbeats
from common.errors import IdentityError

from helpers import unique


def verdicts(checks: list[readiness.Check]) -> dict[str, bool]:
    return {c.name: c.ok for c in checks}


def reasons(checks: list[readiness.Check]) -> dict[str, str]:
    return {c.name: c.reason for c in checks}


@pytest.fixture
def broken_db(new_database):
    params = new_database()
    migrate.migrate(params)
    return params


def test_migrated_database_with_fresh_workers_is_ready(hl_db):
    worker = unique("worker")
    with connect(hl_db) as conn:
        heartbeat(conn, worker, "r-ready-1")

    checks = readiness.readiness(hl_db, workers=(worker,), fresh_within=timedelta(minutes=5))

    assert verdicts(checks) == dict.fromkeys(["reachable", "migrations", "append_only_guards", "privileges", "worker_heartbeats"], True)
    with connect(hl_db) as conn:
        major = conn.execute("select current_setting('server_version_num')::int / 10000").fetchone()[0]
    assert reasons(checks)["reachable"].startswith(f"connected as {APP_ROLE} to PostgreSQL {major}")
    assert readiness.as_dict(checks)["ready"] is True


def test_heartbeat_upserts_and_counts_beats(hl_db):
    worker = unique("worker")
    with connect(hl_db) as conn:
        first = heartbeat(conn, worker, "r-beat-1")
    with connect(hl_db) as conn:
        second = heartbeat(conn, worker, "r-beat-2")
        mine = [b for b in heartbeats(conn) if b["worker"] == worker]

    assert second > first
    assert [(b["run_id"], b["beats"]) for b in mine] == [("r-beat-2", 2)]


def test_heartbeat_refuses_a_placeholder_worker(hl_db):
    with pytest.raises(IdentityError, match="worker must be an explicit identifier"):
        with connect(hl_db) as conn:
            heartbeat(conn, "unknown", "r-beat-1")


def test_missing_and_stale_workers_fail_with_their_names(hl_db):
    stale, never = unique("worker"), unique("worker")
    with connect(hl_db) as conn:
        heartbeat(conn, stale, "r-stale-1")
    time.sleep(0.05)

    checks = readiness.readiness(hl_db, workers=(stale, never), fresh_within=timedelta(milliseconds=10))

    assert verdicts(checks)["worker_heartbeats"] is False
    reason = reasons(checks)["worker_heartbeats"]
    assert f"worker {stale} last beat" in reason and "(run r-stale-1)" in reason
    assert f"worker {never} has never written a heartbeat" in reason
    assert readiness.as_dict(checks)["ready"] is False


def test_dropped_or_weakened_trigger_fails_the_guard_check(broken_db):
    with connect(broken_db, as_app=False) as conn:
        conn.execute("drop trigger label_events_no_truncate on human_loop.label_events")
        conn.execute("alter table human_loop.cases enable trigger cases_append_only")

    checks = readiness.readiness(broken_db, workers=())

    assert verdicts(checks)["append_only_guards"] is False
    assert reasons(checks)["append_only_guards"] == (
        "trigger cases_append_only on cases is not ENABLE ALWAYS (state 'O'); "
        "trigger label_events_no_truncate on label_events is missing"
    )


def test_extra_privilege_fails_the_privilege_check(broken_db):
    with connect(broken_db, as_app=False) as conn:
        conn.execute("grant update (note) on human_loop.label_events to ledgerlane_app")
        conn.execute("grant delete on human_loop.case_events to ledgerlane_app")

    checks = readiness.readiness(broken_db, workers=())

    assert reasons(checks)["privileges"] == (
        "ledgerlane_app has DELETE on human_loop.case_events; ledgerlane_app has UPDATE on human_loop.label_events"
    )


def test_unmigrated_database_reports_every_pending_version(new_database):
    params = new_database()

    checks = readiness.readiness(params, workers=())

    assert verdicts(checks)["migrations"] is False
    assert reasons(checks)["migrations"] == "pending: " + ", ".join(m.label for m in migrate.discover())
    assert verdicts(checks)["append_only_guards"] is False


def test_unreachable_database_fails_every_check_with_the_reason(hl_db):
    closed = {**hl_db, "port": 1, "connect_timeout": 2}

    checks = readiness.readiness(closed, workers=())

    assert not any(verdicts(checks).values())
    assert "could not serve the request" in reasons(checks)["reachable"]
    assert reasons(checks)["migrations"] == "not checked: the database is unreachable"
