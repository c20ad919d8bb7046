"""Bulk label import: a chargeback (or any label) feed in CSV or JSONL, idempotent in bulk.

Feed format, one record per CSV row (UTF-8, header line required) or per JSONL line (one JSON object):

    idempotency_key          required  e.g. the chargeback id ``cb-…``; the record's identity
    account_id               required  the account the label is about
    event_id                 optional  the transaction it is about (empty or absent: the whole account)
    label                    required  fraud | legitimate | suspicious
    observed_at              required  ISO-8601 with a UTC offset: when the label was true, from
                                       1970-01-01T00:00:00Z to now + 5 minutes
    source                   optional  analyst | chargeback | customer | case_review (default chargeback)
    actor                    optional  who asserts it (default chargeback-feed)
    corrects_label_event_id  optional  label_event_id of an earlier event about the same account
    note                     optional  free text, at most 2000 characters

Reads are bounded (MAX_LINE_BYTES per line, MAX_RECORDS, MAX_FEED_BYTES), UTF-8 without NUL (a leading
byte order mark is dropped); a refusal names the file, the line and the bound.

Rows go through COPY into a temporary table, then one ``INSERT … SELECT … ON CONFLICT DO NOTHING``:
a key already stored with the same content is a no-op; with different content (in the database or
twice in the file) the whole import is refused with the keys and line numbers. Identity rules are
the database's CHECK constraints, the mirror of common/identity.py; a refusal lists every bad line.
"""

from __future__ import annotations

import csv
import itertools
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from common.bounds import shown, shown_all
from human_loop.labels import CLIENT_FIELDS, CLOCK_SKEW, LABELS, MAX_ID, MAX_NOTE, OBSERVED_FLOOR, SOURCES
from human_loop.labels import assert_observed_at
from common.errors import ConfigError, IdempotencyConflict, IdentityError

REQUIRED = ("idempotency_key", "account_id", "label", "observed_at")
OPTIONAL = tuple(name for name in CLIENT_FIELDS if name not in REQUIRED)
DEFAULTS = {"source": "chargeback", "actor": "chargeback-feed", "note": ""}
FORMATS = ("csv", "jsonl")
# Bounds on every read, so an endless or binary input (/dev/zero) is refused instead of filling memory.
# A record is a few hundred bytes (a full 2000-character note in 4-byte characters is still under 9 KiB).
MAX_LINE_BYTES = 64 * 1024
MAX_RECORDS = 5_000_000
MAX_FEED_BYTES = 2 * 1024**3
BOM = "\ufeff"
WRITER_LOCK = 7213400118500001  # the lock V002's trigger takes: check and insert see one state
SHOWN = 20
# Deterministic chargeback ids from simulator ground truth: re-deriving a feed gives the same keys.
CHARGEBACK_NAMESPACE = uuid.UUID("5b0d8a52-4c1e-4f0f-9a43-6d1f2a7c9e10")

Row = tuple[int, tuple[Any, ...]]
Line = tuple[int, str]


def feed_format(path: Path, fmt: str | None = None) -> str:
    chosen = fmt or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(path.suffix.lower())
    if chosen not in FORMATS:
        raise ConfigError(f"cannot tell the format of {path}: name it .csv or .jsonl, or pass --format csv|jsonl")
    return chosen


def read_feed(path: Path, fmt: str | None = None, *, now: datetime | None = None) -> Iterator[Row]:
    """``(line number, values in CLIENT_FIELDS order)`` per record; a malformed record is a ConfigError.

    The format and a known size are checked now; every line, the record count and the bytes read are
    checked while the returned iterator streams. ``now`` bounds observed_at (default: the clock).
    """
    fmt = feed_format(path, fmt)
    assert_feed_size(path)
    return _rows(path, fmt, now or datetime.now(timezone.utc))


def assert_feed_size(path: Path) -> None:
    """Refuse up front a regular file larger than MAX_FEED_BYTES (a pipe or device is checked as it streams)."""
    if path.is_file() and path.stat().st_size > MAX_FEED_BYTES:
        raise ConfigError(f"{path} is {path.stat().st_size:,} bytes, a feed may have at most {MAX_FEED_BYTES:,}; "
                          "split it into smaller files (each import is all or nothing)")


def _rows(path: Path, fmt: str, now: datetime) -> Iterator[Row]:
    with path.open("rb") as handle:
        lines = feed_lines(handle, str(path))
        records = _csv_records(lines, str(path)) if fmt == "csv" else _jsonl_records(lines, str(path))
        for count, (line, record) in enumerate(records, start=1):
            if count > MAX_RECORDS:
                raise ConfigError(f"{path} line {line}: more than {MAX_RECORDS:,} records, the most one "
                                  "import takes; split the feed into smaller files")
            yield line, parse_record(record, where=f"{path} line {line}", now=now)


def feed_lines(handle: BinaryIO, name: str) -> Iterator[Line]:
    """``(line number, text)`` per physical line: at most MAX_LINE_BYTES each and MAX_FEED_BYTES in all,
    UTF-8 without NUL; a byte order mark at the very start is dropped."""
    total = 0
    for number in itertools.count(1):
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        total += len(raw)
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise ConfigError(f"{name} line {number} is longer than {MAX_LINE_BYTES:,} bytes, the longest line "
                              "a feed may have (one record per line; is this a feed at all?)")
        if total > MAX_FEED_BYTES:
            raise ConfigError(f"{name} line {number}: more than {MAX_FEED_BYTES:,} bytes read, the most one "
                              "import takes; split the feed into smaller files")
        text = decode_line(raw, name, number)
        yield number, (text[1:] if number == 1 and text.startswith(BOM) else text)


def decode_line(raw: bytes, name: str, number: int) -> str:
    if b"\x00" in raw:
        raise ConfigError(f"{name} line {number} contains a NUL byte at byte {raw.index(0) + 1:,}: a feed is "
                          "UTF-8 text without NUL (is the file UTF-16 or binary?)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{name} line {number} is not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1:,}): "
            "feeds must be encoded as UTF-8; convert the file first (e.g. iconv -f LATIN1 -t UTF-8)"
        ) from None


def _csv_records(lines: Iterable[Line], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(text for _, text in lines)
    try:
        header = assert_csv_header(next(reader, None), name)
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise ConfigError(f"{name} line {reader.line_num}: {len(fields)} fields, but the header on line 1 "
                                  f"names {len(header)}")
            yield reader.line_num, {key: (value if value != "" else None) for key, value in zip(header, fields)}
    except csv.Error as exc:
        raise ConfigError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from None


def assert_csv_header(fields: list[str] | None, name: str) -> list[str]:
    """Line 1 names every required field, each field once, and no unknown field."""
    expected = f"a header line naming {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})"
    if not fields:
        found = "no lines" if fields is None else "an empty line"
        raise ConfigError(f"{name} line 1: expected {expected}, found {found}")
    unknown = [field for field in fields if field not in CLIENT_FIELDS]
    missing = [field for field in REQUIRED if field not in fields]
    repeated = sorted({field for field in fields if fields.count(field) > 1})
    if unknown or missing or repeated:
        raise ConfigError(f"{name} line 1: expected {expected}, found {shown_all(fields)} "
                          f"(unknown {shown_all(unknown)}, missing {missing}, repeated {repeated})")
    return fields


def _jsonl_records(lines: Iterable[Line], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in lines:
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except RecursionError:
            raise ConfigError(f"{name} line {line}: JSON nested too deeply (a record is one flat object)") from None
        except ValueError as exc:  # JSONDecodeError, and integers beyond Python's digit limit
            raise ConfigError(f"{name} line {line}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{name} line {line}: expected a JSON object, found {type(record).__name__}")
        yield line, record


def parse_record(record: dict[str, Any], *, where: str, now: datetime | None = None) -> tuple[Any, ...]:
    """Shape, types and bounds only (cheap enough for millions of rows); identity is the database's CHECK."""
    unknown = sorted(set(record) - set(CLIENT_FIELDS))
    missing = [name for name in REQUIRED if record.get(name) in (None, "")]
    if unknown or missing:
        raise ConfigError(f"{where}: unknown fields {shown_all(unknown)}, missing fields {missing}; "
                          f"expected {list(CLIENT_FIELDS)}")
    values = {**DEFAULTS, **{k: v for k, v in record.items() if v is not None}}
    _assert_choice(values["label"], LABELS, "label", where)
    _assert_choice(values["source"], SOURCES, "source", where)
    values["observed_at"] = assert_observed_at(f"{where}: observed_at", _aware_time(values["observed_at"], where),
                                               now=now or datetime.now(timezone.utc))
    values["corrects_label_event_id"] = _optional_id(values.get("corrects_label_event_id"), where)
    _assert_text(values, where)
    return tuple(values.get(name) for name in CLIENT_FIELDS)


def _assert_choice(value: Any, allowed: tuple[str, ...], field: str, where: str) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{where}: {field} must be one of {list(allowed)}, found {shown(value)}")


def _assert_text(values: dict[str, Any], where: str) -> None:
    for name in ("idempotency_key", "account_id", "event_id", "actor", "note"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be text, found {type(value).__name__}")
        if value is not None and "\x00" in value:
            raise ConfigError(f"{where}: {name} must be text without NUL characters, found one")
    if len(values["note"]) > MAX_NOTE:
        raise ConfigError(f"{where}: note is {len(values['note']):,} characters, at most {MAX_NOTE} allowed")


def _aware_time(value: Any, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(f"{where}: observed_at must be an ISO-8601 time with a UTC offset, found {shown(value)}")
    return moment


def _optional_id(value: Any, where: str) -> int | None:
    """A label_event_id: an integer 1..MAX_ID, as a JSON number or decimal digits."""
    if value is None:
        return None
    number = value if type(value) is int else _digits(value)
    if number is None or not 1 <= number <= MAX_ID:
        raise ConfigError(
            f"{where}: corrects_label_event_id must be an integer from 1 to {MAX_ID}, found {shown(value)}")
    return number


def _digits(value: Any) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ID)) else None


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
        case when observed_at < %(floor)s then 'observed_at (before 1970-01-01T00:00:00Z)' end,
        case when observed_at > clock_timestamp() + %(skew)s then 'observed_at (in the future)' end,
        case when corrects_label_event_id is not null and not exists (
            select 1 from human_loop.label_events e
            where e.label_event_id = s.corrects_label_event_id and e.account_id = s.account_id
        ) then 'corrects_label_event_id (no such event for this account)' end
    ], null) as problems
    from label_import_stage s
) checked where cardinality(problems) > 0 order by line limit %(limit)s"""


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
            f"line {line}: key {shown(key)} differs from the {'stored record' if against == 'stored' else 'same key earlier in the file'}"
            for line, key, against in found[:SHOWN]
        )
        more = " (and more)" if len(found) > SHOWN else ""
        raise IdempotencyConflict(f"import refused, nothing imported: idempotency keys reused with different content: {listed}{more}")


def _insert(conn: psycopg.Connection, cur: psycopg.Cursor) -> int:
    try:
        with conn.transaction():
            return cur.execute(_INSERT).rowcount
    except (psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation) as exc:
        bad = cur.execute(_DIAGNOSE, {"floor": OBSERVED_FLOOR, "skew": CLOCK_SKEW, "limit": SHOWN + 1}).fetchall()
        listed = "; ".join(f"line {line} (key {shown(key)}): {', '.join(problems)}" for line, key, problems in bad[:SHOWN])
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
