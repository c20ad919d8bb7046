"""Ingest lane: reconciliation over the whole bad-input corpus, replay, restart after a kill,
checkpoint identity, consumer-group offsets. Invariants 1, 2, 4 and 6 of DESIGN.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from common import catalog, kafka_admin
from common.errors import IdempotencyConflict
from helpers import isolated, write_config
from simulator.producer import simulate
from streaming import checkpoint as ckpt
from streaming import ingest as lane

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def read(spark, local, table):
    return spark.read.format("delta").load(catalog.location(local.tables_root, table))


def offsets_by_outcome(spark, local):
    """(partition, offset) of every record the three outcome tables hold, with its outcome."""
    frames = [read(spark, local, t).select("partition", "offset", F.lit(t).alias("table"))
              for t in ("bronze.admitted_events", "bronze.duplicate_events", "bronze.quarantine")]
    return frames[0].unionByName(frames[1]).unionByName(frames[2])


def table_versions(spark, local):
    from common.delta import latest_version

    names = ("bronze.admitted_events", "bronze.duplicate_events", "bronze.quarantine", "meta.ingest_receipts")
    return {t: latest_version(spark, catalog.location(local.tables_root, t)) for t in names}


@pytest.fixture(scope="module")
def corpus_run(spark, settings, kafka_bootstrap, tmp_path_factory):
    """One topic with every defect, retries and conflicts on 3 partitions, ingested in several batches."""
    local = isolated(settings, tmp_path_factory.mktemp("corpus"), f"ingest-{uuid.uuid4().hex[:8]}")
    sent = simulate(local, events=1500, seed=5, duplicate_rate=0.03, conflict_rate=0.01, bad_rate=0.15,
                    partitions=3, start=START, days=3)
    summary = lane.ingest(spark, local, "r-ingest-corpus")
    return local, sent, summary


def test_every_record_is_admitted_duplicated_or_quarantined_exactly_once(spark, corpus_run, kafka_bootstrap):
    local, sent, summary = corpus_run
    end = {p["partition"]: p["end_offset"] for p in kafka_admin.topic_snapshot(kafka_bootstrap, local.kafka.topic)["partitions"]}
    placed = offsets_by_outcome(spark, local)

    assert summary["received"] == sent.records == sum(end.values())
    assert summary["received"] == summary["admitted"] + summary["duplicates"] + summary["quarantined"]
    assert placed.count() == placed.select("partition", "offset").distinct().count() == sent.records
    per_partition = {r.partition: r["count"] for r in placed.groupBy("partition").count().collect()}
    assert per_partition == end and len(end) == 3


def test_receipts_reconcile_per_partition(spark, corpus_run):
    local, _, _ = corpus_run
    receipts = read(spark, local, "meta.ingest_receipts").where(F.col("run_id") == "r-ingest-corpus")
    parts = receipts.select(F.explode("partitions").alias("p")).select("p.*").collect()

    assert receipts.count() > 1, "max_offsets_per_trigger=700 should split the topic into several batches"
    for p in parts:
        assert p.received == p.end_offset - p.start_offset == p.admitted + p.duplicates + p.quarantined


def test_quarantine_reasons_match_the_corpus_exactly(spark, corpus_run):
    local, sent, summary = corpus_run
    reasons = Counter(r.reason for r in read(spark, local, "bronze.quarantine").select("reason").collect())
    expected = Counter({k.split(":", 1)[1]: v for k, v in sent.by_expected.items() if k.startswith("quarantined:")})

    assert reasons == expected
    assert summary["duplicates"] == sent.by_expected["duplicate"]
    assert summary["admitted"] == sent.by_expected["admitted"]


def test_admitted_event_ids_are_unique_and_commits_carry_the_run_id(spark, corpus_run):
    from common.delta import history

    local, _, _ = corpus_run
    admitted = read(spark, local, "bronze.admitted_events")
    path = catalog.location(local.tables_root, "bronze.admitted_events")
    stamps = {json.loads(r.userMetadata)["run_id"] for r in history(spark, path).where("operation = 'WRITE'").collect()}

    assert admitted.count() == admitted.select("event_id").distinct().count()
    assert stamps == {"r-ingest-corpus"}
    assert admitted.where(F.col("run_id") != "r-ingest-corpus").count() == 0


def test_consumer_group_shows_the_committed_position(corpus_run, kafka_bootstrap, spark):
    local, _, summary = corpus_run
    _, committed = ckpt.committed_offsets(spark, lane.checkpoint_location(local), local.kafka.topic)
    published = kafka_admin.group_offsets(kafka_bootstrap, local.kafka.consumer_group, local.kafka.topic, [0, 1, 2])

    assert published == committed == {p["partition"]: p["basis_end"] for p in summary["partitions"]}
    assert all(p["lag"] == 0 for p in summary["partitions"]) and summary["caught_up"]


def test_replayed_batch_without_commit_writes_nothing_twice(spark, settings, kafka_bootstrap, tmp_path):
    """Its own topic and run: deleting a commit must not change what the corpus tests read."""
    local = isolated(settings, tmp_path, f"ingest-{uuid.uuid4().hex[:8]}", max_offsets=150)
    simulate(local, events=300, seed=17, duplicate_rate=0.03, conflict_rate=0.01, bad_rate=0.1, partitions=2,
             start=START, days=1)
    lane.ingest(spark, local, "r-ingest-replay")
    checkpoint = lane.checkpoint_location(local)
    last = ckpt.batch_ids(spark, checkpoint, "commits")[-1]
    before = table_versions(spark, local)
    rows_before = offsets_by_outcome(spark, local).count()
    # As after a crash before Spark's commit: neither the commit file nor its checksum exists.
    os.remove(f"{checkpoint}/commits/{last}")
    os.remove(f"{checkpoint}/commits/.{last}.crc")

    lane.ingest(spark, local, "r-ingest-replay")

    assert ckpt.batch_ids(spark, checkpoint, "commits")[-1] == last, "the batch was replayed and committed"
    assert table_versions(spark, local) == before, "Delta skipped every write of the replayed batch"
    assert offsets_by_outcome(spark, local).count() == rows_before


def test_reset_checkpoint_reusing_the_app_id_is_refused(spark, settings, kafka_bootstrap, tmp_path):
    local = isolated(settings, tmp_path, f"ingest-{uuid.uuid4().hex[:8]}")
    simulate(local, events=50, seed=9, duplicate_rate=0, conflict_rate=0, bad_rate=0, partitions=1, start=START, days=1)
    lane.ingest(spark, local, "r-reset-1")
    checkpoint = Path(lane.checkpoint_location(local))
    for log in ("offsets", "commits"):
        for entry in (checkpoint / log).iterdir():
            entry.unlink()  # hidden .crc files too

    with pytest.raises(IdempotencyConflict, match=r"was reset: Delta already holds batch 0 for app id ingest-"):
        lane.ingest(spark, local, "r-reset-2")


def identity_of(spark, paths, checkpoint: Path, run_id: str):
    found = ckpt.check_identity(spark, str(checkpoint), apps_path=paths.apps, receipts_path=paths.receipts,
                                stream="ingest", binding={"topic": "t", "epoch": 1}, prior_work=lambda: None)
    return ckpt.record_identity(spark, found, paths.apps, run_id)


def test_copied_checkpoint_identity_is_refused(spark, settings, tmp_path):
    local = isolated(settings, tmp_path, "copied-identity")
    paths = lane.IngestTables.from_root(local.tables_root)
    original = identity_of(spark, paths, tmp_path / "cp-a", "r-copy")
    (tmp_path / "cp-b").mkdir()
    (tmp_path / "cp-b" / ckpt.IDENTITY_FILE).write_text((tmp_path / "cp-a" / ckpt.IDENTITY_FILE).read_text())

    with pytest.raises(IdempotencyConflict, match=rf"app id {original.app_id} .* is registered for"):
        identity_of(spark, paths, tmp_path / "cp-b", "r-copy")


def test_foreign_checkpoint_with_progress_is_refused(spark, settings, tmp_path):
    local = isolated(settings, tmp_path, "foreign")
    paths = lane.IngestTables.from_root(local.tables_root)
    (tmp_path / "cp" / "offsets").mkdir(parents=True)
    (tmp_path / "cp" / "offsets" / "0").write_text("v1\n{}\n{}\n")

    with pytest.raises(IdempotencyConflict, match="has progress .* but no ledgerlane.json"):
        identity_of(spark, paths, tmp_path / "cp", "r-foreign")


def test_process_killed_between_durable_write_and_commit_loses_and_doubles_nothing(
        spark, settings, kafka_bootstrap, tmp_path):
    local = isolated(settings, tmp_path, f"ingest-{uuid.uuid4().hex[:8]}")
    sent = simulate(local, events=600, seed=13, duplicate_rate=0.05, conflict_rate=0.01, bad_rate=0.05,
                    partitions=2, start=START, days=1)
    config = write_config(local, tmp_path / "kill.toml", kafka_bootstrap)
    env = {**os.environ, "LEDGERLANE_FAULT": "ingest.after_admitted@0"}
    cmd = [sys.executable, "-m", "streaming.ingest", "--config", str(config), "--home", str(local.home),
           "--run-id", "r-killed", "--until-caught-up"]

    killed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert read(spark, local, "bronze.admitted_events").count() > 0, "the kill came after a durable write"

    summary = lane.ingest(spark, local, "r-killed")

    placed = offsets_by_outcome(spark, local)
    assert placed.count() == placed.select("partition", "offset").distinct().count() == sent.records
    assert summary["received"] == sent.records and summary["admitted"] == sent.by_expected["admitted"]
    admitted = read(spark, local, "bronze.admitted_events")
    assert admitted.count() == admitted.select("event_id").distinct().count()


def test_quarantine_keeps_the_raw_bytes_and_a_text_every_reader_can_decode(spark, corpus_run):
    local, _, _ = corpus_run
    quarantine = read(spark, local, "bronze.quarantine")
    not_utf8 = quarantine.where(~F.is_valid_utf8(F.col("value").cast("string")))

    assert quarantine.where(~F.is_valid_utf8("payload") | ~F.is_valid_utf8("key")).count() == 0
    rows = not_utf8.select("payload", "value").collect()   # collect() decodes every string: it must not raise
    assert rows, "the corpus holds records whose bytes are not UTF-8"
    assert all("\ufffd" in row.payload and row.value.decode("utf-8", "replace") == row.payload for row in rows)


def test_a_continuous_stream_stops_on_ctrl_c_with_exit_130_and_resumes_exactly(
        spark, settings, kafka_bootstrap, tmp_path):
    import signal
    import time

    local = isolated(settings, tmp_path, f"ingest-{uuid.uuid4().hex[:8]}")
    sent = simulate(local, events=300, seed=17, duplicate_rate=0.0, conflict_rate=0.0, bad_rate=0.0,
                    partitions=2, start=START, days=1)
    config = write_config(local, tmp_path / "continuous.toml", kafka_bootstrap)
    admitted_log = Path(catalog.location(local.tables_root, "bronze.admitted_events"), "_delta_log")
    running = subprocess.Popen([sys.executable, "-m", "streaming.ingest", "--config", str(config), "--home",
                                str(local.home), "--run-id", "r-continuous", "--trigger-seconds", "1"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not admitted_log.is_dir() and running.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert running.poll() is None, running.stderr.read()[-2000:]
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=120)
    finally:
        running.kill()

    assert running.returncode == 130, err[-2000:]
    assert "interrupted (stopped by SIGINT)" in err and "unexpected" not in err and "Traceback" not in err
    summary = lane.ingest(spark, local, "r-continuous")
    admitted = read(spark, local, "bronze.admitted_events")
    assert summary["caught_up"] and admitted.count() == admitted.select("event_id").distinct().count() == \
        sent.by_expected["admitted"]
