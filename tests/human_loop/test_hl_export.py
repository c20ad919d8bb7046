"""Label export to Delta: incremental by label_event_id, idempotent by txn ids, stamped with the run id."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from chispa import assert_df_equality

from common import delta
from human_loop import labels, migrate, readiness
from human_loop.connection import connect
from common.errors import IdempotencyConflict
from jobs import export_labels

from helpers import unique

OBSERVED = datetime(2025, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def fresh(new_database, hl_settings_for, tmp_path):
    params = new_database()
    migrate.migrate(params)
    return params, hl_settings_for(params, tables_root=str(tmp_path / "tables"))


def add_labels(params: dict, account: str, n: int) -> list[labels.StoredLabel]:
    with connect(params) as conn:
        return [labels.add_label(conn, labels.LabelEventIn(
            idempotency_key=unique("k"), account_id=account, label="fraud", source="chargeback",
            actor="feed-1", observed_at=OBSERVED, note=f"n{i}")) for i in range(n)]


def exported(spark, settings):
    path = export_labels.catalog.location(settings.tables_root, export_labels.TABLE)
    return spark.read.format("delta").load(path), path


def test_exports_incrementally_and_stamps_each_commit(spark, fresh):
    params, settings = fresh
    first = add_labels(params, unique("acct"), 3)

    one = export_labels.export(spark, settings, "r-export-1")
    second = add_labels(params, unique("acct"), 2)
    two = export_labels.export(spark, settings, "r-export-2")
    three = export_labels.export(spark, settings, "r-export-3")

    table, path = exported(spark, settings)
    ids = [s.label_event_id for s in first + second]
    assert (one["exported"], one["watermark_after"], one["delta_version"]) == (3, ids[2], 0)
    assert (two["exported"], two["watermark_before"], two["watermark_after"], two["delta_version"]) == (2, ids[2], ids[4], 1)
    assert (three["exported"], three["delta_version"]) == (0, 1)
    assert sorted(r.label_event_id for r in table.select("label_event_id").collect()) == ids
    runs = [json.loads(r.userMetadata)["run_id"] for r in delta.history(spark, path).orderBy("version").collect()]
    assert runs == ["r-export-1", "r-export-2"]


def test_exported_rows_equal_the_database_rows(spark, fresh):
    params, settings = fresh
    stored = add_labels(params, unique("acct"), 2)
    export_labels.export(spark, settings, "r-export-eq")

    with connect(params) as conn:
        instance = export_labels.source_instance(conn)
    expected = export_labels.to_frame(
        spark, [s.model_dump() for s in stored], instance, "r-export-eq"
    )
    assert_df_equality(exported(spark, settings)[0], expected, ignore_row_order=True, ignore_nullable=True)


def test_rerun_of_the_same_batch_is_skipped_by_delta_txn(spark, fresh, monkeypatch):
    params, settings = fresh
    add_labels(params, unique("acct"), 3)
    export_labels.export(spark, settings, "r-export-a")
    # A second exporter that read the watermark before the first one committed copies the same rows.
    monkeypatch.setattr(export_labels, "watermark", lambda *_: 0)

    again = export_labels.export(spark, settings, "r-export-b")

    table, path = exported(spark, settings)
    assert again["exported"] == 3
    assert table.count() == 3
    assert delta.latest_version(spark, path) == 0


def test_max_rows_bounds_a_run_and_the_next_run_continues(spark, fresh):
    params, settings = fresh
    stored = add_labels(params, unique("acct"), 5)

    first = export_labels.export(spark, settings, "r-export-p1", max_rows=2)
    rest = export_labels.export(spark, settings, "r-export-p2", max_rows=10)

    assert (first["exported"], first["watermark_after"]) == (2, stored[1].label_event_id)
    assert (rest["exported"], rest["watermark_after"]) == (3, stored[4].label_event_id)
    assert exported(spark, settings)[0].count() == 5


def test_export_beats_the_heartbeat_readiness_requires(spark, fresh):
    params, settings = fresh

    export_labels.export(spark, settings, "r-export-hb")

    checks = readiness.readiness(params, workers=("export-labels",), fresh_within=timedelta(minutes=1))
    assert {c.name: c.ok for c in checks}["worker_heartbeats"] is True


def test_table_from_another_database_instance_is_refused(spark, fresh, new_database, hl_settings_for):
    params, settings = fresh
    add_labels(params, unique("acct"), 1)
    export_labels.export(spark, settings, "r-export-x1")
    recreated = new_database()
    migrate.migrate(recreated)
    add_labels(recreated, unique("acct"), 1)
    same_table = hl_settings_for(recreated, tables_root=settings.tables_root)

    with pytest.raises(IdempotencyConflict, match=r"holds label events of database instance\(s\) .* ids restarted"):
        export_labels.export(spark, same_table, "r-export-x2")


def test_delta_table_is_append_only(spark, fresh):
    params, settings = fresh
    add_labels(params, unique("acct"), 1)
    export_labels.export(spark, settings, "r-export-ao")
    _, path = exported(spark, settings)

    with pytest.raises(Exception, match="(?i)append.?only|DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        spark.sql(f"DELETE FROM delta.`{path}`")
