"""Ingest fails closed, through the CLI: a replaced or moved checkpoint, a recreated topic, records
deleted unread, a half-written batch resumed under another run, a second runner. Each refusal has its
own exit code and a message, and leaves every table exactly as it was (versions and row counts).
Invariants 2, 6 and 7 of DESIGN.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from common import catalog
from common.errors import IdempotencyConflict, LockHeld, StateDrift
from common.locks import FileLock
from simulator.producer import simulate
from helpers import cli, delete_records_before, isolated, recreate_topic, table_state, unique, write_config
from streaming import checkpoint as ckpt
from streaming import ingest as lane

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def lane_env(settings, kafka_bootstrap, tmp_path):
    """Isolated settings, their config file, and ``ingest(run_id, *flags)`` through the CLI."""
    local = isolated(settings, tmp_path, unique("drift"))
    config = write_config(local, tmp_path / "ingest.toml", kafka_bootstrap)

    def ingest(run_id: str, *flags: str, config_file: Path = config) -> tuple[int, str, str]:
        return cli("--config", str(config_file), "--home", str(local.home), "stream", "ingest", "--run-id", run_id,
                   "--until-caught-up", *flags)

    return local, config, ingest


def traffic(local, seed: int, events: int = 200, bad_rate: float = 0.05) -> object:
    return simulate(local, events=events, seed=seed, duplicate_rate=0.02, conflict_rate=0, bad_rate=bad_rate,
                    partitions=2, start=START, days=1)


def admitted_ids(spark, local) -> set[str]:
    path = catalog.location(local.tables_root, "bronze.admitted_events")
    return {r.event_id for r in spark.read.format("delta").load(path).select("event_id").collect()}


def test_a_deleted_checkpoint_is_refused_instead_of_reading_the_topic_twice(spark, lane_env):
    local, _, ingest = lane_env
    traffic(local, seed=31)
    assert ingest("r-ckpt-1")[0] == 0
    shutil.rmtree(lane.checkpoint_location(local))
    before = table_state(spark, local.tables_root)

    code, out, err = ingest("r-ckpt-2")

    assert code == StateDrift.exit_code, err
    assert "was deleted or replaced" in err and "run r-ckpt-1" in err and "Traceback" not in err + out
    assert table_state(spark, local.tables_root) == before


def test_a_checkpoint_moved_by_configuration_is_refused(spark, lane_env, tmp_path, kafka_bootstrap):
    local, _, ingest = lane_env
    traffic(local, seed=32)
    assert ingest("r-move-1")[0] == 0
    moved = local.model_copy(update={"storage": local.storage.model_copy(
        update={"checkpoints_root": str(tmp_path / "elsewhere")})})
    before = table_state(spark, local.tables_root)

    code, _, err = ingest("r-move-2", config_file=write_config(moved, tmp_path / "moved.toml", kafka_bootstrap))

    assert code == StateDrift.exit_code, err
    assert "is new, but" in err and "already ingested" in err
    assert table_state(spark, local.tables_root) == before


@pytest.mark.parametrize("events_after", [600, 40], ids=["more-records-than-before", "fewer-records-than-before"])
def test_a_recreated_topic_is_refused_until_a_new_epoch_is_started_explicitly(
        spark, lane_env, kafka_bootstrap, events_after):
    local, _, ingest = lane_env
    traffic(local, seed=33)
    assert ingest("r-epoch-1")[0] == 0
    recreate_topic(kafka_bootstrap, local.kafka.topic, 2)
    sent = traffic(local, seed=34, events=events_after, bad_rate=0)
    before = table_state(spark, local.tables_root)

    code, out, err = ingest("r-epoch-2")

    assert code == StateDrift.exit_code, err
    assert "deleted and recreated" in err and "--new-epoch" in err and "Traceback" not in err + out
    assert table_state(spark, local.tables_root) == before

    code, out, err = ingest("r-epoch-2", "--new-epoch", "--reason", "topic recreated by the test", "--json")

    assert code == 0, err
    summary = json.loads(out)
    assert (summary["epoch"], summary["received"], summary["caught_up"]) == (2, sent.records, True)
    assert summary["admitted"] == sent.by_expected["admitted"]
    new_ids = {f"evt-34-{n:08d}" for n in range(events_after)}
    assert new_ids <= admitted_ids(spark, local), "every valid event of the new topic is admitted"


def test_records_deleted_unread_by_retention_are_refused(spark, lane_env, kafka_bootstrap):
    local, _, ingest = lane_env
    traffic(local, seed=35)
    assert ingest("r-ret-1")[0] == 0
    _, committed = ckpt.committed_offsets(spark, lane.checkpoint_location(local), local.kafka.topic)
    traffic(local, seed=36)
    delete_records_before(kafka_bootstrap, local.kafka.topic, {p: o + 10 for p, o in committed.items()})
    before = table_state(spark, local.tables_root)

    code, _, err = ingest("r-ret-2")

    assert code == StateDrift.exit_code, err
    assert "10 records deleted unread" in err
    assert table_state(spark, local.tables_root) == before


def test_a_half_written_batch_is_resumed_only_by_the_run_that_started_it(spark, lane_env, kafka_bootstrap):
    local, config, ingest = lane_env
    traffic(local, seed=37, bad_rate=0.2)
    env = {**os.environ, "LEDGERLANE_FAULT": "ingest.after_quarantine@0"}
    killed = subprocess.run([sys.executable, "-m", "streaming.ingest", "--config", str(config), "--home",
                             str(local.home), "--run-id", "r-planned", "--until-caught-up"],
                            cwd=REPO, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    before = table_state(spark, local.tables_root)
    assert before["bronze.quarantine"][1] > 0, "the kill came after the quarantine write"

    code, _, err = ingest("r-other")

    assert code == IdempotencyConflict.exit_code, err
    assert "started by run r-planned" in err and "--run-id r-planned" in err
    assert table_state(spark, local.tables_root) == before

    assert ingest("r-planned")[0] == 0
    for table in ("bronze.quarantine", "bronze.admitted_events", "meta.ingest_receipts"):
        rows = spark.read.format("delta").load(catalog.location(local.tables_root, table))
        assert {r.run_id for r in rows.where(F.col("batch_id") == 0).select("run_id").collect()} == {"r-planned"}


def test_a_commit_deleted_without_its_checksum_replays_the_batch_and_writes_nothing_twice(spark, lane_env):
    local, _, ingest = lane_env
    traffic(local, seed=38)
    assert ingest("r-crc")[0] == 0
    checkpoint = lane.checkpoint_location(local)
    last = ckpt.batch_ids(spark, checkpoint, "commits")[-1]
    os.remove(f"{checkpoint}/commits/{last}")    # the .crc stays behind
    outcome_tables = ("bronze.admitted_events", "bronze.duplicate_events", "bronze.quarantine", "meta.ingest_receipts")
    before = {t: v for t, v in table_state(spark, local.tables_root).items() if t in outcome_tables}

    code, _, err = ingest("r-crc")

    assert code == 0, err
    assert f"removed commits/.{last}.crc" in err
    assert ckpt.batch_ids(spark, checkpoint, "commits")[-1] == last
    assert {t: v for t, v in table_state(spark, local.tables_root).items() if t in outcome_tables} == before


def test_a_second_ingest_on_the_same_topic_is_refused_naming_the_holder(spark, lane_env):
    local, _, ingest = lane_env
    traffic(local, seed=39, events=20)
    holder = {"pid": 4242, "host": "other-host", "since": "2026-12-01T00:00:00+00:00"}
    folder = Path(lane.topic_folder(local))

    with FileLock(folder / ".ledgerlane.lock", holder, what="test"):
        code, out, err = ingest("r-second-runner")

    assert code == LockHeld.exit_code
    assert "process 4242 on other-host since 2026-12-01" in err and "Traceback" not in err + out
    assert not (Path(local.tables_root) / "meta").exists(), "nothing was written"


def test_an_invalid_run_id_is_refused_before_spark_starts(tmp_path):
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli.main", "--home", str(tmp_path), "stream", "ingest",
                           "--run-id", "bad id!", "--until-caught-up"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 2
    assert "run id 'bad id!' is invalid" in done.stderr and "starting Spark" not in done.stderr
    assert time.monotonic() - began < 15, "refused at parse time, not after a JVM start"


def test_the_basis_of_a_run_is_compared_with_the_topic_it_resumes_on(spark, lane_env, kafka_bootstrap):
    local, _, ingest = lane_env
    traffic(local, seed=40, events=50)
    assert ingest("r-basis")[0] == 0
    recreate_topic(kafka_bootstrap, local.kafka.topic, 2)
    traffic(local, seed=41, events=50)
    before = table_state(spark, local.tables_root)

    code, _, err = ingest("r-basis", "--new-epoch", "--reason", "resume an old run on a new topic")

    assert code == StateDrift.exit_code
    assert "run r-basis started on topic" in err and "Start a new run id" in err
    assert table_state(spark, local.tables_root) == before, "not even the new epoch was recorded"
