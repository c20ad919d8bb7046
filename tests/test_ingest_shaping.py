"""Pure pieces of the ingest batch on inline rows: the receipt fold, the history dates, the cached payload."""

from __future__ import annotations

from datetime import date, datetime, timezone

from chispa import assert_df_equality

from streaming import ingest as lane
from streaming.validate import event_dates

RAW = "topic string, partition int, offset long, timestamp timestamp, key binary, value binary"
BROKER_TIME = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)


def test_receipt_folds_outcome_counts_per_partition_and_reason():
    counts = [
        {"partition": 1, "outcome": "admitted", "reason": None, "n": 5, "first": 10, "last": 20},
        {"partition": 1, "outcome": "quarantined", "reason": "invalid_json", "n": 2, "first": 8, "last": 21},
        {"partition": 0, "outcome": "duplicate", "reason": None, "n": 1, "first": 3, "last": 3},
        {"partition": 0, "outcome": "quarantined", "reason": "invalid_json", "n": 1, "first": 0, "last": 0},
        {"partition": 0, "outcome": "quarantined", "reason": "conflicting_duplicate", "n": 1, "first": 2, "last": 2},
    ]

    receipt = lane.build_receipt(counts, "r-1", "app-1", 7, "topic-a")

    assert receipt["partitions"] == [
        {"partition": 0, "start_offset": 0, "end_offset": 4, "received": 3, "admitted": 0, "duplicates": 1,
         "quarantined": 2},
        {"partition": 1, "start_offset": 8, "end_offset": 22, "received": 7, "admitted": 5, "duplicates": 0,
         "quarantined": 2},
    ]
    assert (receipt["received"], receipt["admitted"], receipt["duplicates"], receipt["quarantined"]) == (10, 5, 1, 4)
    assert receipt["quarantined_by_reason"] == {"invalid_json": 3, "conflicting_duplicate": 1}
    assert (receipt["run_id"], receipt["app_id"], receipt["batch_id"], receipt["topic"]) == ("r-1", "app-1", 7, "topic-a")


def test_history_dates_cover_every_acceptable_event_time_and_skip_the_rest(spark):
    payloads = [
        b'{"event_time": "2026-11-01T10:00:00Z"}',
        b'{"event_time": "2026-10-31T23:30:00-02:00"}',   # 2026-11-01 in UTC, the date the table uses
        b'{"event_time": "2026-11-01T10:00:00Z"} trailing',  # invalid JSON, but its date is harmless extra
        b'{"event_time": "1970-01-01T00:00:00Z"}',         # outside the broker window: never admitted
        b'{"event_time": "not a time"}',
        b'not json at all',
    ]
    raw = spark.createDataFrame([("t", 0, i, BROKER_TIME, b"k", p) for i, p in enumerate(payloads)], RAW)

    dates = {row.d for row in event_dates(raw).collect()}

    assert dates == {date(2026, 11, 1)}


def test_only_quarantined_rows_keep_their_raw_payload(spark):
    classified = spark.createDataFrame([
        ("evt-1", "admitted", b"a", "a"), ("evt-2", "duplicate", b"b", "b"), ("evt-3", "quarantined", b"c", "c"),
    ], "event_id string, outcome string, value binary, payload string")

    actual = lane.keep_payload_of_quarantined(classified)

    expected = spark.createDataFrame([
        ("evt-1", "admitted", None, None), ("evt-2", "duplicate", None, None), ("evt-3", "quarantined", b"c", "c"),
    ], "event_id string, outcome string, value binary, payload string")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
