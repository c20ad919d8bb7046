"""The README's first command: the end-to-end demo works on embedded defaults, and a second run with
the same seed admits nothing new (idempotent everywhere). Walking the catalog of what the two runs
wrote proves invariant 6 (every commit names its run) and invariant 3 (append-only tables refuse
UPDATE and DELETE) on every table, not only the ones a lane's own tests look at.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

import products  # noqa: F401  (registers the product tables in the catalog)
from cli import demo
from common import catalog, delta, tables

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_runs(spark, settings, services, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    storage = settings.storage.model_copy(update={"tables_root": str(root / "tables"),
                                                  "checkpoints_root": str(root / "checkpoints"),
                                                  "evidence_root": str(root / "evidence")})
    local = settings.model_copy(update={"storage": storage,
                                        "kafka": settings.kafka.model_copy(update={"topic": "demo-test"})})
    first = demo.run(local, events=400, seed=3, run_id="r-demo-1", now=NOW)
    second = demo.run(local, events=400, seed=3, run_id="r-demo-2", now=NOW)
    return SimpleNamespace(local=local, first=first, second=second)


def written_tables(spark, tables_root: str) -> dict[str, str]:
    return {name: path for name, path in catalog.catalog(tables_root).items() if tables.exists(spark, path)}


def test_demo_twice_with_the_same_seed(demo_runs):
    first, second = demo_runs.first, demo_runs.second

    assert first["ingest"]["admitted"] == 400 and first["ingest"]["caught_up"]
    assert second["ingest"]["admitted"] == 0
    assert second["ingest"]["duplicates"] == first["ingest"]["admitted"] + first["ingest"]["duplicates"]
    assert first["labels_imported"]["inserted"] == first["simulated"]["fraud_events"]
    assert second["labels_imported"]["inserted"] == 0
    assert second["labels_exported"]["exported"] == 0
    assert {p["verdict"] for p in first["products"].values()} == {"PASS"}
    assert first["products"]["transactions_view"]["rows"] == 400
    assert second["products"] == {}
    assert demo.exit_code(first) == demo.exit_code(second) == 0
    assert demo.exit_code({"products": {"merchant_risk": {"verdict": "ERROR"}}}) == 7
    assert "r-demo-1" in demo.describe(first)


def test_every_commit_of_every_table_the_runs_wrote_names_its_run(spark, demo_runs):
    written = written_tables(spark, demo_runs.local.tables_root)
    unstamped = {}
    for name, path in written.items():
        stamps = [json.loads(r.userMetadata or "{}").get("run_id")
                  for r in delta.history(spark, path).select("userMetadata").collect()]
        if set(stamps) - {"r-demo-1", "r-demo-2"}:
            unstamped[name] = stamps

    assert len(written) >= 12, sorted(written)
    assert unstamped == {}


def test_every_append_only_table_is_append_only_in_delta_itself(spark, demo_runs):
    written = written_tables(spark, demo_runs.local.tables_root)
    append_only = {name: path for name, path in written.items() if catalog.spec(name).append_only}
    assert {"bronze.admitted_events", "meta.ingest_receipts", "meta.certifications", "labels.label_events"} <= set(
        append_only)
    for name, path in append_only.items():
        properties = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]
        table = DeltaTable.forPath(spark, path)
        rows = spark.read.format("delta").load(path).count()
        column = spark.read.format("delta").load(path).columns[0]

        assert properties.get("delta.appendOnly") == "true", name
        with pytest.raises(Exception, match="(?i)append.?only"):
            table.delete(F.lit(True))
        with pytest.raises(Exception, match="(?i)append.?only"):
            table.update(F.lit(True), {column: F.col(column)})
        assert spark.read.format("delta").load(path).count() == rows, name
