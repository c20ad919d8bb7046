"""Misuse of ``labels import`` (issue 10): bad bytes, a missing header, out-of-bound times and endless input are
refused naming the file, the line and the bound; no stack trace, nothing imported."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest

from human_loop import label_import, labels
from human_loop.connection import connect
from helpers import assert_refused, human_loop_counts, unique

OBSERVED = "2025-03-01T10:00:00Z"
HEADER = "idempotency_key,account_id,label,observed_at,note"


def feed_line(**extra) -> dict:
    return {"idempotency_key": unique("cb"), "account_id": unique("acct"), "label": "fraud", "observed_at": OBSERVED,
            **extra}


# --- 4. encodings: Latin-1 and NUL refused, a UTF-8 byte order mark accepted ----------------------------


def test_latin1_feed_is_refused_naming_file_line_and_encoding(hl_run, capsys, hl_unchanged, tmp_path):
    feed = tmp_path / "latin1.csv"
    rows = [HEADER] + [f"{unique('cb')},{unique('acct')},fraud,{OBSERVED},{note}" for note in ("ok", "Café")]
    feed.write_bytes("\n".join(rows).encode("latin-1") + b"\n")

    result = hl_run(capsys, "labels", "import", str(feed))

    assert_refused(result, 2, "latin1.csv line 3 is not UTF-8 (byte 0xe9 at byte", "feeds must be encoded as UTF-8")


def test_nul_byte_in_a_feed_is_refused_naming_the_line(hl_run, capsys, hl_unchanged, tmp_path):
    feed = tmp_path / "nul.jsonl"
    feed.write_bytes(json.dumps(feed_line()).encode() + b"\n" + json.dumps(feed_line()).encode()[:20] + b"\x00}\n")

    result = hl_run(capsys, "labels", "import", str(feed))

    assert_refused(result, 2, "nul.jsonl line 2 contains a NUL byte at byte 21")


def test_feed_starting_with_a_utf8_byte_order_mark_imports(hl_run, capsys, hl_db, tmp_path):
    row = feed_line(note="Café")
    feed = tmp_path / "bom.csv"
    feed.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{','.join(row.values())}\n".encode("utf-8"))
    before = human_loop_counts(hl_db)["label_events"]

    code, out, err = hl_run(capsys, "labels", "import", str(feed), "--json")

    assert (code, json.loads(out)["inserted"]) == (0, 1), err
    assert human_loop_counts(hl_db)["label_events"] == before + 1
    with connect(hl_db) as conn:
        assert labels.by_key(conn, row["idempotency_key"]).note == "Café"


# --- 5. a CSV feed needs its header line -------------------------------------------------------------


def test_csv_without_a_header_is_refused_naming_what_was_found(hl_run, capsys, hl_unchanged, tmp_path):
    feed = tmp_path / "headless.csv"
    feed.write_text(f"cb-77aa1,acct-77aa1,fraud,{OBSERVED},\n", encoding="utf-8")

    result = hl_run(capsys, "labels", "import", str(feed))

    assert_refused(result, 2, "headless.csv line 1: expected a header line naming idempotency_key, account_id, "
                              "label, observed_at (optional: event_id, source, actor, corrects_label_event_id, note)",
                   "found ['cb-77aa1', 'acct-77aa1', 'fraud', '2025-03-01T10:00:00Z', '']",
                   "missing ['idempotency_key', 'account_id', 'label', 'observed_at']")


@pytest.mark.parametrize("content,found", [
    ("", "found no lines"),
    ("idempotency_key,account_id,label,observed_at,colour\n", "unknown ['colour']"),
    ("idempotency_key,account_id,label,observed_at,label\n", "repeated ['label']"),
])
def test_csv_header_must_name_the_known_fields_once(hl_run, capsys, hl_unchanged, tmp_path, content, found):
    feed = tmp_path / "feed.csv"
    feed.write_text(content, encoding="utf-8")

    assert_refused(hl_run(capsys, "labels", "import", str(feed)), 2, "feed.csv line 1: expected a header line", found)


def test_csv_row_with_more_fields_than_the_header_is_refused(hl_run, capsys, hl_unchanged, tmp_path):
    feed = tmp_path / "wide.csv"
    feed.write_text(f"{HEADER}\n{unique('cb')},{unique('acct')},fraud,{OBSERVED},note,extra\n", encoding="utf-8")

    assert_refused(hl_run(capsys, "labels", "import", str(feed)), 2,
                   "wide.csv line 2: 6 fields, but the header on line 1 names 5")


# --- 6. observed_at bounded in the feed --------------------------------------------------------------


@pytest.mark.parametrize("observed", ["0001-01-01T00:00:00+00:00", "1969-12-31T23:59:59+00:00", "in an hour"])
def test_import_refuses_observed_at_out_of_bounds_naming_the_line(hl_run, capsys, hl_unchanged, tmp_path, observed):
    if observed == "in an hour":
        observed = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    feed = tmp_path / "old.jsonl"
    feed.write_text(json.dumps(feed_line()) + "\n" + json.dumps(feed_line(observed_at=observed)) + "\n",
                    encoding="utf-8")

    assert_refused(hl_run(capsys, "labels", "import", str(feed)), 2,
                   "old.jsonl line 2: observed_at must lie between 1970-01-01T00:00:00Z and now + 5 minutes",
                   f"found {observed}")


# --- 7. every read is bounded ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_dev_zero_is_refused_at_the_line_bound(hl_run, capsys, hl_unchanged, fmt):
    result = hl_run(capsys, "labels", "import", "--format", fmt, "/dev/zero")

    assert_refused(result, 2, "/dev/zero line 1 is longer than 65,536 bytes, the longest line a feed may have")


def test_feed_larger_than_the_byte_bound_is_refused_before_reading(hl_run, capsys, hl_unchanged, tmp_path):
    feed = tmp_path / "huge.jsonl"
    with feed.open("wb") as handle:
        handle.truncate(label_import.MAX_FEED_BYTES + 1)  # sparse: nothing is written to disk

    result = hl_run(capsys, "labels", "import", str(feed))

    assert_refused(result, 2, "huge.jsonl is 2,147,483,649 bytes, a feed may have at most 2,147,483,648")


def test_endless_stream_of_blank_lines_stops_at_the_byte_bound(hl_run, capsys, hl_unchanged, tmp_path, monkeypatch):
    monkeypatch.setattr(label_import, "MAX_FEED_BYTES", 1024 * 1024)
    pipe = tmp_path / "stream"
    os.mkfifo(pipe)
    writer = threading.Thread(target=write_until_closed, args=(pipe, b"\n" * 65536), daemon=True)
    writer.start()

    result = hl_run(capsys, "labels", "import", "--format", "jsonl", str(pipe))

    writer.join(timeout=30)
    assert_refused(result, 2, "stream line 1048577: more than 1,048,576 bytes read, the most one import takes")
    assert not writer.is_alive()


def write_until_closed(path, chunk: bytes) -> None:
    with open(path, "wb", buffering=0) as handle:  # unbuffered: closing flushes nothing into a closed pipe
        try:
            while True:
                handle.write(chunk)
        except BrokenPipeError:
            pass


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_more_records_than_the_bound_are_refused_and_none_stored(
        hl_run, capsys, hl_unchanged, tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(label_import, "MAX_RECORDS", 2)
    rows = [feed_line() for _ in range(3)]
    feed = tmp_path / f"three.{fmt}"
    lines = [json.dumps(r) for r in rows] if fmt == "jsonl" else [",".join(rows[0])] + [",".join(r.values()) for r in rows]
    feed.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = hl_run(capsys, "labels", "import", str(feed))

    assert_refused(result, 2, f"three.{fmt} line {3 if fmt == 'jsonl' else 4}: more than 2 records")


def test_json_nested_beyond_recursion_is_refused(hl_run, capsys, hl_unchanged, tmp_path):
    feed = tmp_path / "deep.jsonl"
    feed.write_text("[" * 60_000 + "\n", encoding="utf-8")

    assert_refused(hl_run(capsys, "labels", "import", str(feed)), 2, "deep.jsonl line 1: JSON nested too deeply")


def test_huge_correction_id_in_a_feed_is_refused_naming_the_bound(hl_run, capsys, hl_unchanged, tmp_path):
    feed = tmp_path / "ids.jsonl"
    feed.write_text(json.dumps(feed_line(corrects_label_event_id=10**20)) + "\n", encoding="utf-8")

    assert_refused(hl_run(capsys, "labels", "import", str(feed)), 2,
                   "ids.jsonl line 1: corrects_label_event_id must be an integer from 1 to 9223372036854775807, "
                   "found 100000000000000000000")
