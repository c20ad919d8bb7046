"""The ingest batch on inline rows: the receipt fold, the history dates, the cached payload, and which
tables a batch writes, in what order, with what txn (Delta writes recorded, not made)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

from chispa import assert_df_equality

from simulator.world import build_world, generate
from streaming import checkpoint as ckpt
from streaming import ingest as lane
from streaming.validate import Validator, event_dates

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

    receipt = lane.build_receipt(counts, "r-1", "app-1", 7, {"topic": "topic-a", "epoch": 2, "topic_id": "id-a"})

    assert receipt["partitions"] == [
        {"partition": 0, "start_offset": 0, "end_offset": 4, "received": 3, "admitted": 0, "duplicates": 1,
         "quarantined": 2},
        {"partition": 1, "start_offset": 8, "end_offset": 22, "received": 7, "admitted": 5, "duplicates": 0,
         "quarantined": 2},
    ]
    assert (receipt["received"], receipt["admitted"], receipt["duplicates"], receipt["quarantined"]) == (10, 5, 1, 4)
    assert receipt["quarantined_by_reason"] == {"invalid_json": 3, "conflicting_duplicate": 1}
    assert (receipt["run_id"], receipt["app_id"], receipt["batch_id"], receipt["topic"]) == ("r-1", "app-1", 7, "topic-a")
    assert (receipt["epoch"], receipt["topic_id"]) == (2, "id-a")


BASE = generate(build_world(3, start=BROKER_TIME, accounts=5, days=1), 1).events[0]


def record(offset: int, event_time: str, key: bytes | None = None, **change) -> tuple:
    """A raw Kafka row carrying BASE with ``change`` applied and the given event_time text."""
    payload = json.loads(BASE.model_copy(update=change).to_json()) | {"event_time": event_time}
    return ("t", 0, offset, BROKER_TIME, key or BASE.account_id.encode(), json.dumps(payload).encode())


def test_history_dates_are_the_utc_dates_of_the_valid_events_only(spark):
    raw = spark.createDataFrame([
        record(0, "2026-10-31T10:00:00Z"),
        record(1, "2026-10-31T23:30:00-02:00", event_id="evt-3-late"),   # 2026-11-01 in UTC, as the table has it
        record(2, "2026-10-30T10:00:00Z", key=b"acc-someone-else"),      # key mismatch: not admitted
        record(3, "1970-01-01T00:00:00Z", event_id="evt-3-ancient"),     # outside the broker window
        ("t", 0, 4, BROKER_TIME, b"k", b"not json at all"),
    ], RAW)

    dates = {row.d for row in event_dates(Validator()(raw)).collect()}

    assert dates == {date(2026, 10, 31), date(2026, 11, 1)}


def test_only_quarantined_rows_keep_their_raw_payload(spark):
    classified = spark.createDataFrame([
        ("evt-1", "admitted", b"a"), ("evt-2", "duplicate", b"b"), ("evt-3", "quarantined", b"c"),
    ], "event_id string, outcome string, value binary")

    actual = lane.keep_payload_of_quarantined(classified)

    expected = spark.createDataFrame([
        ("evt-1", "admitted", None), ("evt-2", "duplicate", None), ("evt-3", "quarantined", b"c"),
    ], "event_id string, outcome string, value binary")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def writer(tmp_path, run_id: str = "r-1") -> lane.IngestBatchWriter:
    identity = ckpt.CheckpointIdentity("app-1", str(tmp_path / "checkpoint"), binding={"topic": "t", "epoch": 1,
                                                                                        "topic_id": "id-t"})
    return lane.IngestBatchWriter(lane.IngestTables.from_root(str(tmp_path)), run_id, identity)


def batch_writes(spark, monkeypatch, tmp_path, rows: list[tuple]) -> list[tuple]:
    """The (table, txn) of every Delta write one batch of ``rows`` makes, in order (nothing is written)."""
    written = []
    monkeypatch.setattr(lane.delta, "append", lambda frame, path, table, run_id, txn=None, **_: written.append((table, txn)))
    writer(tmp_path)(spark.createDataFrame(rows, RAW), 7)
    return written


def test_a_batch_writes_quarantine_duplicates_admitted_then_its_receipt_all_idempotent(spark, monkeypatch, tmp_path):
    """The three outcome tables side by side, in any order; the receipt always last (it completes the batch)."""
    valid = record(0, "2026-11-01T10:00:00Z")
    retry = ("t", 0, 1, *valid[3:])
    written = batch_writes(spark, monkeypatch, tmp_path, [valid, retry, ("t", 0, 2, BROKER_TIME, b"k", b"not json")])

    outcomes = {"bronze.quarantine", "bronze.duplicate_events", "bronze.admitted_events"}
    assert sorted(written[:3]) == sorted((table, ("app-1", 7)) for table in outcomes)
    assert written[3:] == [("meta.ingest_receipts", ("app-1", 7))]


def test_the_history_is_pinned_so_the_admitted_write_keeps_the_cached_classification(spark, tmp_path):
    """Written side by side, the outcome tables must not make Spark classify the batch again: a Delta
    append drops every cached plan that reads the table at its latest version, and the classification
    reads the admitted history. Read at a pinned version, it stays cached."""
    paths = lane.IngestTables.from_root(str(tmp_path))
    writer(tmp_path)(spark.createDataFrame([record(0, "2026-11-01T10:00:00Z", event_id="evt-old")], RAW), 0)
    validated = Validator()(spark.createDataFrame([record(1, "2026-11-01T11:00:00Z", event_id="evt-new")], RAW))

    def cached_classifications() -> int:   # the one cached query plan (Delta caches its own log states)
        return sum(1 for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()
                   if not info.name().startswith("Delta Table State") and info.numCachedPartitions() > 0)

    classified = lane.classify(validated, writer(tmp_path)._history(validated, 1)).persist()
    try:
        classified.count()
        assert cached_classifications() == 1
        writer(tmp_path)(spark.createDataFrame([record(2, "2026-11-01T12:00:00Z", event_id="evt-other")], RAW), 2)
        assert spark.read.format("delta").load(paths.admitted).count() == 2
        assert cached_classifications() == 1, "appending to the admitted table dropped the cached classification"
    finally:
        classified.unpersist()


def test_a_batch_without_rows_for_a_table_makes_no_commit_there_but_always_a_receipt(spark, monkeypatch, tmp_path):
    written = batch_writes(spark, monkeypatch, tmp_path, [("t", 0, 0, BROKER_TIME, b"k", b"not json")])

    assert written == [("bronze.quarantine", ("app-1", 7)), ("meta.ingest_receipts", ("app-1", 7))]


def test_a_replayed_batch_that_skipped_a_table_writes_nothing_twice(spark, tmp_path):
    """Real Delta writes: the replay decides the same, so it skips the same table and the txn ids hold."""
    paths = lane.IngestTables.from_root(str(tmp_path))
    raw = spark.createDataFrame([record(0, "2026-11-01T10:00:00Z"), ("t", 0, 1, BROKER_TIME, b"k", b"not json")], RAW)
    rows = lambda path: spark.read.format("delta").load(path).count()  # noqa: E731

    for _ in range(2):   # the first attempt, then a replay of the same batch id
        writer(tmp_path)(raw, 0)

    assert (rows(paths.admitted), rows(paths.quarantine), rows(paths.receipts)) == (1, 1, 1)
    assert not lane.tables.exists(spark, paths.duplicates)
