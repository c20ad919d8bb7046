"""Cases opened by ``open_case`` actions, and their events (assigned, note, closed, reopened).

A case id is uuid5 of the action id that opened it, so the case worker may see the same action any
number of times and still open one case. Cases and case events are append-only; a case's status is
derived from its newest opened/closed/reopened event (view ``human_loop.case_overview``).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from common.bounds import assert_text, shown
from common.errors import IdempotencyConflict, IdentityError
from common.identity import assert_identity
from common.run import RUN_ID_PATTERN

# Fixed forever: changing it would give every action a new case id.
CASE_NAMESPACE = uuid.UUID("0d6f3c1e-8a57-4f43-b3a9-2c51f0e7a9d4")
EventKind = Literal["opened", "assigned", "note", "closed", "reopened"]
CASE_FIELDS = ("case_id", "action_id", "account_id", "event_id", "decision_id", "reason", "run_id", "opened_at")
CASE_CONTENT = CASE_FIELDS[1:]
EVENT_FIELDS = ("case_id", "idempotency_key", "kind", "actor", "body")
CASES = sql.Identifier("human_loop", "cases")
CASE_EVENTS = sql.Identifier("human_loop", "case_events")
CASE_WORKER = "case-worker"
MAX_REASON = 2000  # cases.reason CHECK in V001
MAX_BODY = 10_000  # case_events.body CHECK in V001: a note's text, a closing reason


class OpenCaseAction(BaseModel):
    """The part of an ``open_case`` action the human loop needs; every key explicit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_id: str
    account_id: str
    event_id: str | None = None
    decision_id: str | None = None
    reason: str = Field(default="", max_length=MAX_REASON)
    run_id: str = Field(pattern=RUN_ID_PATTERN.pattern)
    opened_at: AwareDatetime

    @field_validator("action_id", "account_id")
    @classmethod
    def _explicit_identity(cls, value: object, info) -> str:
        return assert_identity(info.field_name, value)

    @field_validator("event_id", "decision_id")
    @classmethod
    def _optional_identity(cls, value: object, info) -> str | None:
        return None if value is None else assert_identity(info.field_name, value)

    @field_validator("reason")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("reason must not contain NUL characters")
        return value


def case_id_for(action_id: str) -> uuid.UUID:
    return uuid.uuid5(CASE_NAMESPACE, assert_identity("action_id", action_id))


def _columns(names: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def _insert_returning(table: sql.Identifier, names: tuple[str, ...], conflict: str) -> sql.Composed:
    return sql.SQL("insert into {table} ({cols}) values ({vals}) on conflict ({key}) do nothing returning *").format(
        table=table, cols=_columns(names), vals=sql.SQL(", ").join(sql.Placeholder(n) for n in names),
        key=sql.Identifier(conflict),
    )


def open_case(conn: psycopg.Connection, action: OpenCaseAction) -> dict[str, Any]:
    """The case for ``action``: created once (with its 'opened' event), then returned as stored."""
    values = {"case_id": case_id_for(action.action_id), **action.model_dump()}
    with conn.cursor(row_factory=dict_row) as cur:
        created = cur.execute(_insert_returning(CASES, CASE_FIELDS, "action_id"), values).fetchone()
        stored = created or cur.execute(
            sql.SQL("select * from {} where action_id = %s").format(CASES), (action.action_id,)
        ).fetchone()
    _assert_same(f"action id {action.action_id!r}", stored, values, CASE_CONTENT)
    if created:
        record_event(conn, stored["case_id"], "opened", CASE_WORKER, action.reason, f"opened-{stored['case_id']}")
    return stored


def record_event(
    conn: psycopg.Connection, case_id: uuid.UUID, kind: EventKind, actor: str, body: str, idempotency_key: str
) -> dict[str, Any]:
    """Append one case event, idempotent on its key (same key, other content: IdempotencyConflict)."""
    values = {"case_id": case_id, "idempotency_key": assert_identity("idempotency_key", idempotency_key),
              "kind": kind, "actor": assert_identity("actor", actor), "body": assert_body("body", body)}
    with conn.cursor(row_factory=dict_row) as cur:
        try:
            row = cur.execute(_insert_returning(CASE_EVENTS, EVENT_FIELDS, "idempotency_key"), values).fetchone()
        except psycopg.errors.ForeignKeyViolation:
            raise IdentityError(f"case_id {str(case_id)!r} names no case") from None
        row = row or cur.execute(
            sql.SQL("select * from {} where idempotency_key = %s").format(CASE_EVENTS), (idempotency_key,)
        ).fetchone()
    _assert_same(f"idempotency key {idempotency_key!r}", row, values, EVENT_FIELDS)
    return row


def assert_body(name: str, body: str) -> str:
    """A case event's text: what the database's CHECK allows (MAX_BODY characters), without NUL."""
    return assert_text(name, body, max_chars=MAX_BODY)


def _assert_same(what: str, stored: dict[str, Any], incoming: dict[str, Any], fields: tuple[str, ...]) -> None:
    differing = [name for name in fields if stored[name] != incoming[name]]
    if differing:
        raise IdempotencyConflict(f"{what} was already used with different content (fields: {', '.join(differing)})")


def default_key(kind: str, case_id: uuid.UUID, actor: str, body: str) -> str:
    """A key derived from the content: the same note or close typed twice is recorded once."""
    return f"{kind}-{uuid.uuid5(CASE_NAMESPACE, f'{case_id}|{actor}|{body}')}"


def add_note(conn: psycopg.Connection, case_id: uuid.UUID, actor: str, text: str, key: str | None = None) -> dict[str, Any]:
    get_case(conn, case_id)
    return record_event(conn, case_id, "note", actor, text, key or default_key("note", case_id, actor, text))


def close_case(conn: psycopg.Connection, case_id: uuid.UUID, actor: str, reason: str, key: str | None = None) -> dict[str, Any]:
    """Close once. Closing a closed case returns the event that closed it (two analysts, one outcome)."""
    key = key or default_key("close", case_id, actor, reason)
    # Per-case lock: the app role may not SELECT … FOR UPDATE (no UPDATE right), so serialise here.
    conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 7213400118500002))", (str(case_id),))
    existing = _event_by_key(conn, key)
    if existing is None and get_case(conn, case_id)["status"] == "closed":
        return _latest_close(conn, case_id)
    return record_event(conn, case_id, "closed", actor, reason, key)


def _event_by_key(conn: psycopg.Connection, key: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql.SQL("select * from {} where idempotency_key = %s").format(CASE_EVENTS), (key,)).fetchone()


def _latest_close(conn: psycopg.Connection, case_id: uuid.UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL("select * from {} where case_id = %s and kind = 'closed' order by case_event_id desc limit 1").format(CASE_EVENTS),
            (case_id,),
        ).fetchone()


def get_case(conn: psycopg.Connection, case_id: uuid.UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("select * from human_loop.case_overview where case_id = %s", (case_id,)).fetchone()
    if row is None:
        raise IdentityError(f"case_id {str(case_id)!r} names no case")
    return row


def case_events(conn: psycopg.Connection, case_id: uuid.UUID) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            sql.SQL("select * from {} where case_id = %s order by case_event_id").format(CASE_EVENTS), (case_id,)
        ).fetchall()


def list_cases(
    conn: psycopg.Connection, *, status: str | None = None, account_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first, optionally one status ('open' | 'closed') or one account."""
    if account_id is not None:
        assert_identity("account_id", account_id)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select * from human_loop.case_overview "
            "where (%(status)s::text is null or status = %(status)s) "
            "and (%(account)s::text is null or account_id = %(account)s) "
            "order by recorded_at desc, case_id limit %(limit)s",
            {"status": status, "account": account_id, "limit": limit},
        ).fetchall()


def parse_case_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        raise IdentityError(f"case id must be a UUID, found {shown(text)}") from None
