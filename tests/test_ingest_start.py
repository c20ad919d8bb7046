"""Ingest's start without a broker: the epoch is planned without writing, recorded only after the
checks, and what is read back after a record must be what this start planned (a racing start of the
same epoch or the same run on another topic incarnation is refused, not trusted)."""

from __future__ import annotations

from datetime import datetime, timezone

from pathlib import Path

import pytest

from common import basis as run_basis
from common import tables
from common.errors import ConfigError, IdempotencyConflict, StateDrift
from helpers import isolated
from streaming import epochs
from streaming import ingest as lane


def snapshot(topic_id: str, partitions: int = 2, topic: str = "payments") -> dict:
    return {"topic": topic, "cluster_id": "cluster-1", "topic_id": topic_id,
            "partitions": [{"partition": p, "start_offset": 0, "end_offset": 10} for p in range(partitions)]}


def test_the_first_ingest_of_a_topic_plans_epoch_one():
    planned = epochs.plan(snapshot("id-a"), "r-1", None, new_epoch=False, reason=None)

    assert planned.new and planned.row["epoch"] == 1 and planned.row["topic_id"] == "id-a"
    assert planned.row["reason"] == "first ingest of the topic"


def test_a_first_ingest_refused_at_the_checkpoint_records_no_epoch_and_no_identity(spark, settings, tmp_path):
    local = isolated(settings, tmp_path, "payments")
    offsets = Path(lane.checkpoint_location(local, 1)) / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text("v1\n{}\n{}\n")   # progress without ledgerlane.json: not ours

    with pytest.raises(IdempotencyConflict, match="has progress .* but no ledgerlane.json"):
        lane.prepare(spark, local, "r-1", snapshot("id-a"), new_epoch=False, reason=None, progress=lambda _: None)

    paths = lane.IngestTables.from_root(local.tables_root)
    assert not tables.exists(spark, paths.epochs), "the epoch is recorded only after every check passed"
    assert not tables.exists(spark, paths.apps)


def test_a_planned_epoch_follows_the_current_one_and_needs_a_reason():
    current = {**epochs.new_row(snapshot("id-a"), "r-1", "first ingest of the topic", 3)}

    again = epochs.plan(snapshot("id-a"), "r-2", current, new_epoch=False, reason=None)
    over = epochs.plan(snapshot("id-b"), "r-2", current, new_epoch=True, reason="topic recreated")

    assert not again.new and again.row is current
    assert over.new and over.row["epoch"] == 4 and over.row["reason"] == "topic recreated"
    with pytest.raises(ConfigError, match="--new-epoch needs --reason"):
        epochs.plan(snapshot("id-b"), "r-2", current, new_epoch=True, reason=" ")
    with pytest.raises(StateDrift, match=r"topic id id-a -> id-b \(deleted and recreated\)"):
        epochs.plan(snapshot("id-b"), "r-2", current, new_epoch=False, reason=None)


def test_an_epoch_recorded_by_a_racing_start_for_another_topic_incarnation_is_refused(spark, tmp_path):
    path = str(tmp_path / "epochs")
    first = epochs.record(spark, path, epochs.plan(snapshot("id-a"), "r-1", None, new_epoch=False, reason=None))
    assert (first["epoch"], first["topic_id"]) == (1, "id-a")

    # Another start planned epoch 1 too, before the first one's row existed, but saw a recreated topic.
    late = epochs.plan(snapshot("id-b"), "r-2", None, new_epoch=False, reason=None)
    with pytest.raises(StateDrift, match="planned epoch 1 of topic payments \\(topic id id-b\\).*epoch 1 of topic "
                                         "id id-a by run r-1"):
        epochs.record(spark, path, late)

    rows = spark.read.format("delta").load(path).collect()
    assert [(r.epoch, r.topic_id) for r in rows] == [(1, "id-a")], "the racing start recorded nothing"


def test_a_basis_recorded_for_the_same_run_on_another_topic_incarnation_is_refused(spark, tmp_path):
    path = str(tmp_path / "basis")
    read_at = datetime(2026, 12, 7, 9, 30, tzinfo=timezone.utc)
    recorded = lane.record_run_basis(spark, path, "r-race", snapshot("id-a"), read_at)
    assert recorded["topic_id"] == "id-a"
    assert recorded["captured_at"] == read_at.replace(tzinfo=None), "the basis time is when the bus was read (UTC)"

    with pytest.raises(StateDrift, match="run r-race started on topic payments id id-a"):
        lane.record_run_basis(spark, path, "r-race", snapshot("id-b"))

    assert run_basis.read_basis(spark, path, "r-race")["topic_id"] == "id-a"
