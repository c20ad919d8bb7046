"""Label events: append-only, bitemporal, idempotent by key; "labels as of T" from one index.

``observed_at`` is when a label was true; ``recorded_at`` is when the database learned it, set by the
database and never by a client. The same idempotency key with the same content returns the stored
record; with different content it is an IdempotencyConflict naming the key. A correction is a new
event whose ``corrects_label_event_id`` points at an earlier event about the same account.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal, get_args

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from common.errors import ConfigError, IdempotencyConflict, IdentityError
from common.identity import assert_identity

Label = Literal["fraud", "legitimate", "suspicious"]
Source = Literal["analyst", "chargeback", "customer", "case_review"]
LABELS: tuple[str, ...] = get_args(Label)
SOURCES: tuple[str, ...] = get_args(Source)
MAX_NOTE = 2000
MAX_ID = 2**63 - 1  # label_event_id is a PostgreSQL bigint
# observed_at bounds, enforced by the database too: the floor by V005, the ceiling (relative to
# recorded_at) by V001. Before 1970 no fraud label is plausible, and year-1 times break PySpark readers.
OBSERVED_FLOOR = datetime(1970, 1, 1, tzinfo=timezone.utc)
CLOCK_SKEW = timedelta(minutes=5)

# What a client states; the key's content is exactly these fields.
CONTENT_FIELDS = ("account_id", "event_id", "label", "source", "actor", "observed_at", "corrects_label_event_id", "note")
CLIENT_FIELDS = ("idempotency_key", *CONTENT_FIELDS)
STORED_FIELDS = ("label_event_id", *CLIENT_FIELDS, "recorded_at")
TABLE = sql.Identifier("human_loop", "label_events")


class LabelEventIn(BaseModel):
    """One label as a client submits it; placeholders and malformed keys raise IdentityError."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idempotency_key: str
    account_id: str
    event_id: str | None = None
    label: Label
    source: Source
    actor: str
    observed_at: AwareDatetime
    corrects_label_event_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    note: str = Field(default="", max_length=MAX_NOTE)

    @field_validator("idempotency_key", "account_id", "actor")
    @classmethod
    def _explicit_identity(cls, value: object, info) -> str:
        return assert_identity(info.field_name, value)

    @field_validator("event_id")
    @classmethod
    def _optional_identity(cls, value: object, info) -> str | None:
        return None if value is None else assert_identity(info.field_name, value)

    @field_validator("note")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("note must not contain NUL characters (PostgreSQL text cannot hold them)")
        return value

    def content(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONTENT_FIELDS}


class StoredLabel(LabelEventIn):
    label_event_id: int
    recorded_at: datetime


def assert_observed_at(name: str, moment: datetime, *, now: datetime) -> datetime:
    """ConfigError unless ``OBSERVED_FLOOR <= moment <= now + CLOCK_SKEW``; ``name`` says where it was found."""
    ceiling = now + CLOCK_SKEW
    if not OBSERVED_FLOOR <= moment <= ceiling:
        raise ConfigError(
            f"{name} must lie between {OBSERVED_FLOOR:%Y-%m-%dT%H:%M:%SZ} and now + 5 minutes "
            f"({ceiling.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}), found {moment.isoformat()}"
        )
    return moment


def _columns(names: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def add_label(conn: psycopg.Connection, event: LabelEventIn) -> StoredLabel:
    """Insert once; a repeat with the same key returns the stored record if its content is the same."""
    query = sql.SQL("insert into {table} ({cols}) values ({vals}) on conflict (idempotency_key) do nothing returning {out}").format(
        table=TABLE, cols=_columns(CLIENT_FIELDS),
        vals=sql.SQL(", ").join(sql.Placeholder(name) for name in CLIENT_FIELDS), out=_columns(STORED_FIELDS),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        try:
            row = cur.execute(query, event.model_dump(include=set(CLIENT_FIELDS))).fetchone()
        except (psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation) as exc:
            raise refused(event.idempotency_key, exc) from None
    stored = StoredLabel(**row) if row else by_key(conn, event.idempotency_key)
    assert_same_content(event.idempotency_key, stored.content(), event.content())
    return stored


def refused(key: str, exc: psycopg.Error) -> IdentityError:
    """The database's own rules said no: a constraint mirrors identity rules or points at a subject."""
    constraint = getattr(exc.diag, "constraint_name", None) or "a constraint"
    return IdentityError(f"label event {key!r} refused by the database ({constraint}): {exc.diag.message_primary}")


def by_key(conn: psycopg.Connection, key: str) -> StoredLabel:
    query = sql.SQL("select {out} from {table} where idempotency_key = %s").format(out=_columns(STORED_FIELDS), table=TABLE)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (key,)).fetchone()
    if row is None:
        raise IdentityError(f"no label event has idempotency key {key!r}")
    return StoredLabel(**row)


def assert_same_content(key: str, stored: dict[str, Any], incoming: dict[str, Any]) -> None:
    """IdempotencyConflict naming the key and the fields that differ (values of short fields only)."""
    differing = [name for name in CONTENT_FIELDS if stored[name] != incoming[name]]
    if not differing:
        return
    shown = ", ".join(
        name if name == "note" else f"{name}: stored {stored[name]!r}, new {incoming[name]!r}" for name in differing
    )
    raise IdempotencyConflict(
        f"idempotency key {key!r} was already used with different content ({shown}); "
        "to change a label, record a correction under a new key with corrects_label_event_id"
    )


def _as_of_query(account_id: str | None) -> sql.Composed:
    account_filter = sql.SQL("and account_id = %(account_id)s") if account_id is not None else sql.SQL("")
    return sql.SQL(
        "select distinct on (account_id, event_id) {out} from {table} "
        "where recorded_at <= %(at)s {account_filter} "
        "order by account_id, event_id, recorded_at desc, label_event_id desc"
    ).format(out=_columns(STORED_FIELDS), table=TABLE, account_filter=account_filter)


def as_of(conn: psycopg.Connection, at: datetime, account_id: str | None = None) -> list[StoredLabel]:
    """For each subject (account_id, event_id), the newest label recorded at or before ``at``."""
    if account_id is not None:
        assert_identity("account_id", account_id)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_as_of_query(account_id), {"at": at, "account_id": account_id}).fetchall()
    # Rows come from constrained columns: build without re-validating each one.
    return [StoredLabel.model_construct(**row) for row in rows]


def explain_as_of(conn: psycopg.Connection, at: datetime, account_id: str | None = None) -> str:
    """The plan PostgreSQL chooses for ``as_of``, as text (proves the index is used)."""
    query = sql.SQL("explain {}").format(_as_of_query(account_id))
    rows = conn.execute(query, {"at": at, "account_id": account_id}).fetchall()
    return "\n".join(row[0] for row in rows)


def out_of_bounds_since(conn: psycopg.Connection, after_id: int, limit: int, shown: int) -> list[tuple[int, str]]:
    """``(label_event_id, observed_at in UTC as text)`` of at most ``shown`` of the ``limit`` events after
    ``after_id`` whose observed_at breaks the bounds (rows stored before V005 may). Text, because such a
    time may not even load into Python."""
    query = sql.SQL(
        "select label_event_id, (observed_at at time zone 'UTC')::text from ("
        "select label_event_id, observed_at, recorded_at from {table} where label_event_id > %s "
        "order by label_event_id limit %s) batch "
        "where observed_at < %s or observed_at > recorded_at + %s order by label_event_id limit %s"
    ).format(table=TABLE)
    return conn.execute(query, (after_id, limit, OBSERVED_FLOOR, CLOCK_SKEW, shown)).fetchall()


def since(conn: psycopg.Connection, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Label events with ``label_event_id > after_id`` in id order: the export's incremental read."""
    query = sql.SQL("select {out} from {table} where label_event_id > %s order by label_event_id limit %s").format(
        out=_columns(STORED_FIELDS), table=TABLE
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, (after_id, limit)).fetchall()
