"""Bulk label import: a chargeback (or any label) feed in CSV or JSONL, idempotent in bulk.

Feed format, one record per CSV row (UTF-8, header line) or per JSONL line (one JSON object):

    idempotency_key          required  e.g. the chargeback id ``cb-…``; the record's identity
    account_id               required  the account the label is about
    event_id                 optional  the transaction it is about (empty or absent: the whole account)
    label                    required  fraud | legitimate | suspicious
    observed_at              required  ISO-8601 with a UTC offset: when the label was true
    source                   optional  analyst | chargeback | customer | case_review (default chargeback)
    actor                    optional  who asserts it (default chargeback-feed)
    corrects_label_event_id  optional  label_event_id of an earlier event about the same account
    note                     optional  free text, at most 2000 characters

Rows go through COPY into a temporary table, then one ``INSERT … SELECT … ON CONFLICT DO NOTHING``:
a key already stored with the same content is a no-op; with different content (in the database or
twice in the file) the whole import is refused with the keys and line numbers. Identity rules are
the database's CHECK constraints, the mirror of common/identity.py; a refusal lists every bad line.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from human_loop.labels import CLIENT_FIELDS, LABELS, MAX_NOTE, SOURCES
from common.errors import ConfigError, IdempotencyConflict, IdentityError

REQUIRED = ("idempotency_key", "account_id", "label", "observed_at")
DEFAULTS = {"source": "chargeback", "actor": "chargeback-feed", "note": ""}
FORMATS = ("csv", "jsonl")
WRITER_LOCK = 7213400118500001  # the lock V002's trigger takes: check and insert see one state
SHOWN = 20
# Deterministic chargeback ids from simulator ground truth: re-deriving a feed gives the same keys.
CHARGEBACK_NAMESPACE = uuid.UUID("5b0d8a52-4c1e-4f0f-9a43-6d1f2a7c9e10")

Row = tuple[int, tuple[Any, ...]]


def feed_format(path: Path, fmt: str | None = None) -> str:
    chosen = fmt or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(path.suffix.lower())
    if chosen not in FORMATS:
        raise ConfigError(f"cannot tell the format of {path}: name it .csv or .jsonl, or pass --format csv|jsonl")
    return chosen


def read_feed(path: Path, fmt: str | None = None) -> Iterator[Row]:
    """``(line number, values in CLIENT_FIELDS order)`` per record; a malformed record is a ConfigError."""
    fmt = feed_format(path, fmt)
    with path.open(encoding="utf-8", newline="") as handle:
        records = _csv_records(handle) if fmt == "csv" else _jsonl_records(handle, path)
        for line, record in records:
            yield line, parse_record(record, where=f"{path.name} line {line}")


def _csv_records(handle) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(handle)
    for record in reader:
        yield reader.line_num, {key: (value if value != "" else None) for key, value in record.items()}


def _jsonl_records(handle, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path.name} line {line}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path.name} line {line}: expected a JSON object, found {type(record).__name__}")
        yield line, record


def parse_record(record: dict[str, Any], *, where: str) -> tuple[Any, ...]:
    """Shape and types only (cheap enough for millions of rows); identity is the database's CHECK."""
    unknown = sorted(set(record) - set(CLIENT_FIELDS))
    missing = [name for name in REQUIRED if record.get(name) in (None, "")]
    if unknown or missing:
        raise ConfigError(f"{where}: unknown fields {unknown}, missing fields {missing}; expected {list(CLIENT_FIELDS)}")
    values = {**DEFAULTS, **{k: v for k, v in record.items() if v is not None}}
    _assert_choice(values["label"], LABELS, "label", where)
    _assert_choice(values["source"], SOURCES, "source", where)
    values["observed_at"] = _aware_time(values["observed_at"], where)
    values["corrects_label_event_id"] = _optional_int(values.get("corrects_label_event_id"), where)
    _assert_text(values, where)
    return tuple(values.get(name) for name in CLIENT_FIELDS)


def _assert_choice(value: Any, allowed: tuple[str, ...], field: str, where: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}: {field} must be one of {list(allowed)}, found {value!r}")


def _assert_text(values: dict[str, Any], where: str) -> None:
    for name in ("idempotency_key", "account_id", "event_id", "actor", "note"):
        value = values.get(name)
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise ConfigError(f"{where}: {name} must be text without NUL characters, found {type(value).__name__}")
    if len(values["note"]) > MAX_NOTE:
        raise ConfigError(f"{where}: note is {len(values['note'])} characters, at most {MAX_NOTE} allowed")


def _aware_time(value: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(f"{where}: observed_at must be an ISO-8601 time with a UTC offset, found {value!r}")
    return moment


def _optional_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, (bool, float)):
        raise ConfigError(f"{where}: corrects_label_event_id must be a positive integer, found {value!r}")
    return number


# --- the import ----------------------------------------------------------------------------------

_STAGE = """
create temporary table label_import_stage (
    line bigint not null, idempotency_key text, account_id text, event_id text, label text, source text,
    actor text, observed_at timestamptz, corrects_label_event_id bigint, note text
) on commit drop"""
_COPY = """
copy label_import_stage (line, idempotency_key, account_id, event_id, label, source, actor, observed_at,
                         corrects_label_event_id, note) from stdin"""
_CONFLICTS = """
select s.line, s.idempotency_key, 'stored' as against from label_import_stage s
join human_loop.label_events e using (idempotency_key)
where (s.account_id, s.event_id, s.label, s.source, s.actor, s.observed_at, s.corrects_label_event_id, s.note)
      is distinct from (e.account_id, e.event_id, e.label, e.source, e.actor, e.observed_at, e.corrects_label_event_id, e.note)
union all
select min(line), idempotency_key, 'file' from label_import_stage
where idempotency_key in (select idempotency_key from label_import_stage group by 1 having count(*) > 1)
group by idempotency_key
having count(distinct (account_id, event_id, label, source, actor, observed_at, corrects_label_event_id, note)) > 1
order by 1 limit %s"""
_INSERT = """
insert into human_loop.label_events
       (idempotency_key, account_id, event_id, label, source, actor, observed_at, corrects_label_event_id, note)
select idempotency_key, account_id, event_id, label, source, actor, observed_at, corrects_label_event_id, note
from label_import_stage order by line
on conflict (idempotency_key) do nothing"""
_DIAGNOSE = """
select line, idempotency_key, problems from (
    select line, idempotency_key, array_remove(array[
        case when not human_loop.is_valid_identity(idempotency_key) then 'idempotency_key' end,
        case when not human_loop.is_valid_identity(account_id) then 'account_id' end,
        case when event_id is not null and not human_loop.is_valid_identity(event_id) then 'event_id' end,
        case when not human_loop.is_valid_identity(actor) then 'actor' end,
        case when observed_at > clock_timestamp() + interval '5 minutes' then 'observed_at (in the future)' end,
        case when corrects_label_event_id is not null and not exists (
            select 1 from human_loop.label_events e
            where e.label_event_id = s.corrects_label_event_id and e.account_id = s.account_id
        ) then 'corrects_label_event_id (no such event for this account)' end
    ], null) as problems
    from label_import_stage s
) checked where cardinality(problems) > 0 order by line limit %s"""


def import_labels(conn: psycopg.Connection, rows: Iterable[Row]) -> dict[str, int]:
    """All or nothing, idempotent: ``{"rows", "inserted", "unchanged"}``; conflicts and bad rows raise."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        cur.execute("drop table if exists pg_temp.label_import_stage")
        cur.execute(_STAGE)
        total = _copy_rows(cur, rows)
        _assert_no_conflicts(cur)
        inserted = _insert(conn, cur)
    return {"rows": total, "inserted": inserted, "unchanged": total - inserted}


def _copy_rows(cur: psycopg.Cursor, rows: Iterable[Row]) -> int:
    total = 0
    with cur.copy(_COPY) as copy:
        for line, values in rows:
            copy.write_row((line, *values))
            total += 1
    return total


def _assert_no_conflicts(cur: psycopg.Cursor) -> None:
    found = cur.execute(_CONFLICTS, (SHOWN + 1,)).fetchall()
    if found:
        listed = "; ".join(
            f"line {line}: key {key!r} differs from the {'stored record' if against == 'stored' else 'same key earlier in the file'}"
            for line, key, against in found[:SHOWN]
        )
        more = " (and more)" if len(found) > SHOWN else ""
        raise IdempotencyConflict(f"import refused, nothing imported: idempotency keys reused with different content: {listed}{more}")


def _insert(conn: psycopg.Connection, cur: psycopg.Cursor) -> int:
    try:
        with conn.transaction():
            return cur.execute(_INSERT).rowcount
    except (psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation) as exc:
        bad = cur.execute(_DIAGNOSE, (SHOWN + 1,)).fetchall()
        listed = "; ".join(f"line {line} (key {key!r}): {', '.join(problems)}" for line, key, problems in bad[:SHOWN])
        raise IdentityError(f"import refused, nothing imported: {listed or exc.diag.message_primary}") from None


# --- chargebacks from simulator ground truth -----------------------------------------------------


def chargeback_key(event_id: str) -> str:
    return f"cb-{uuid.uuid5(CHARGEBACK_NAMESPACE, event_id)}"


def chargebacks_from_ground_truth(
    records: Iterable[dict[str, Any]], *, include_legitimate: bool = False
) -> Iterator[dict[str, Any]]:
    """Feed records for the simulator's truth: one fraud chargeback per fraudulent event
    (observed at its event time), optionally a legitimate label for the others."""
    for record in records:
        if not record.get("is_fraud") and not include_legitimate:
            continue
        yield {
            "idempotency_key": chargeback_key(record["event_id"]),
            "account_id": record["account_id"],
            "event_id": record["event_id"],
            "label": "fraud" if record.get("is_fraud") else "legitimate",
            "observed_at": record["event_time"],
            "source": "chargeback",
            "actor": "chargeback-feed",
            "note": str(record.get("scenario") or "")[:MAX_NOTE],
        }


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def write_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            count += 1
    return count
