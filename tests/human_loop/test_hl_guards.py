"""Append-only truth and explicit identity, enforced by the database itself."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from human_loop import cases, labels
from human_loop.connection import APP_ROLE, connect
from common.identity import PLACEHOLDERS, is_valid_identity

from helpers import unique

APPEND_ONLY = ("human_loop.label_events", "human_loop.case_events", "human_loop.cases")
MUTATIONS = {
    "update": "update {} set recorded_at = recorded_at",
    "delete": "delete from {}",
    "truncate": "truncate {} cascade",
}


@pytest.fixture(scope="module")
def seeded(hl_db):
    """One label and one case, so UPDATE/DELETE would have rows to touch."""
    with connect(hl_db) as conn:
        labels.add_label(conn, labels.LabelEventIn(
            idempotency_key=unique("k"), account_id=unique("acct"), label="fraud", source="analyst",
            actor="analyst-1", observed_at=datetime(2025, 1, 1, tzinfo=timezone.utc)))
        cases.open_case(conn, cases.OpenCaseAction(
            action_id=unique("act"), account_id=unique("acct"), run_id="r-guard-1",
            opened_at=datetime(2025, 1, 1, tzinfo=timezone.utc)))
    return hl_db


def _run_as(params: dict, statement: str, *, as_app: bool) -> None:
    from psycopg import sql

    with connect(params, as_app=as_app) as conn:
        conn.execute(sql.SQL(statement))


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize("verb", sorted(MUTATIONS))
def test_application_role_has_no_right_to_mutate(seeded, table, verb):
    statement = MUTATIONS[verb].format(table)

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table"):
        _run_as(seeded, statement, as_app=True)


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize("verb", sorted(MUTATIONS))
def test_triggers_stop_even_the_owner(seeded, table, verb):
    statement = MUTATIONS[verb].format(table)
    name = table.split(".")[1]

    with pytest.raises(psycopg.errors.RestrictViolation, match=rf"human_loop.{name} is append-only: {verb.upper()} is not allowed"):
        _run_as(seeded, statement, as_app=False)


def test_triggers_fire_in_replica_mode_too(seeded):
    with connect(seeded, as_app=False) as conn:
        conn.execute("set session_replication_role = replica")
        with pytest.raises(psycopg.errors.RestrictViolation, match="append-only: DELETE"):
            conn.execute("delete from human_loop.label_events")


def test_application_connects_as_the_application_role(hl_db):
    with connect(hl_db) as conn:
        assert conn.execute("select current_user").fetchone()[0] == APP_ROLE


def test_client_cannot_choose_recorded_at_or_ids(hl_db):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        with connect(hl_db) as conn:
            conn.execute(
                "insert into human_loop.label_events (idempotency_key, account_id, label, source, actor, observed_at, recorded_at) "
                "values (%s, %s, 'fraud', 'analyst', 'analyst-1', now(), '2000-01-01')",
                (unique("k"), unique("acct")),
            )


def test_owner_supplied_recorded_at_is_overwritten_by_the_database(hl_db):
    long_ago = datetime(2000, 1, 1, tzinfo=timezone.utc)
    with connect(hl_db, as_app=False) as conn:
        recorded = conn.execute(
            "insert into human_loop.label_events (idempotency_key, account_id, label, source, actor, observed_at, recorded_at) "
            "values (%s, %s, 'fraud', 'analyst', 'analyst-1', %s, %s) returning recorded_at",
            (unique("k"), unique("acct"), long_ago, long_ago),
        ).fetchone()[0]

    assert recorded > datetime.now(timezone.utc) - timedelta(minutes=1)


def test_label_about_the_future_is_refused_by_the_database(hl_db):
    event = labels.LabelEventIn(
        idempotency_key=unique("k"), account_id=unique("acct"), label="fraud", source="analyst", actor="analyst-1",
        observed_at=datetime.now(timezone.utc) + timedelta(days=1))

    from common.errors import IdentityError

    with pytest.raises(IdentityError, match="label_events_observed_not_future"):
        with connect(hl_db) as conn:
            labels.add_label(conn, event)


# --- identity: the SQL rule mirrors common/identity.py --------------------------------------------

IDENTITY_BATTERY = sorted(PLACEHOLDERS - {""}) + [
    "", "N/A", "n-a", "UN_KNOWN", "Unknown", "NULL", "Test-123", "testing1", "placeholder_7", "dummy1", "0000",
    "00000000-0000-0000-0000-000000000000", "0:0", "acct-001", "a1b", "ACC:12.3-x", "ab", "a" * 64, "a" * 65,
    "acct 1", " acct-1", "аcct-1", "x'); drop table cases; --", "acct-1;", "_acct", "9", "cb-0a1b2c",
    "tbd-2", "example", "nan", "acct-test", "guest", "guest-9",
]


def test_sql_identity_rule_agrees_with_python_on_every_value(hl_db):
    with connect(hl_db) as conn:
        sql_verdicts = {
            value: conn.execute("select human_loop.is_valid_identity(%s)", (value,)).fetchone()[0]
            for value in IDENTITY_BATTERY
        }
        null_verdict = conn.execute("select human_loop.is_valid_identity(null)").fetchone()[0]

    assert sql_verdicts == {value: is_valid_identity(value) for value in IDENTITY_BATTERY}
    assert null_verdict is False and is_valid_identity(None) is False


def test_database_refuses_a_trailing_newline_even_where_python_regex_would_not(hl_db):
    # Python's `$` matches before a final "\n"; PostgreSQL's does not. The database fails closed.
    with connect(hl_db) as conn:
        assert conn.execute("select human_loop.is_valid_identity(%s)", ("acct-001\n",)).fetchone()[0] is False


@pytest.mark.parametrize("column", ["account_id", "actor", "idempotency_key", "event_id"])
@pytest.mark.parametrize("value", ["unknown", "N/A", "", "0000", "test-acct"])
def test_check_constraints_refuse_placeholders_that_bypass_python(hl_db, column, value):
    row = {"idempotency_key": unique("k"), "account_id": unique("acct"), "actor": "analyst-1", "event_id": unique("ev")}
    row[column] = value

    with pytest.raises(psycopg.errors.CheckViolation, match=f"label_events_{column if column != 'idempotency_key' else 'key'}"):
        with connect(hl_db) as conn:
            conn.execute(
                "insert into human_loop.label_events (idempotency_key, account_id, event_id, label, source, actor, observed_at) "
                "values (%(idempotency_key)s, %(account_id)s, %(event_id)s, 'fraud', 'analyst', %(actor)s, now())",
                row,
            )
