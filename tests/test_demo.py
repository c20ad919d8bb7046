"""The README's first command: the end-to-end demo works on embedded defaults, and a second run with
the same seed admits nothing new (idempotent everywhere). Walking the catalog of what the two runs
wrote proves invariant 6 (every commit names its run) and invariant 3 (append-only tables refuse
UPDATE and DELETE) on every table, not only the ones a lane's own tests look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

import products  # noqa: F401  (registers the product tables in the catalog)
from cli import demo
from common import catalog, delta, tables
from helpers import make_home

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_runs(spark):
    """The README's first command itself (scripts/demo.sh, its own services in a scratch home), then the
    same seed again in this process: both demos must end in verdicts."""
    from common.config import load_settings
    from services import manager

    home = make_home("ledgerlane-demo-")
    env = {**os.environ, "LEDGERLANE_HOME": str(home)}
    try:
        done = subprocess.run(["bash", "scripts/demo.sh", "--events", "300", "--seed", "3", "--json"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, done.stderr[-3000:]
        local = load_settings("local", home=home)
        second = demo.demo(local, events=300, seed=3)
        yield SimpleNamespace(local=local, first=json.loads(done.stdout), second=second, stderr=done.stderr)
    finally:
        manager.down(home)
        shutil.rmtree(home, ignore_errors=True)


def written_tables(spark, tables_root: str) -> dict[str, str]:
    return {name: path for name, path in catalog.catalog(tables_root).items() if tables.exists(spark, path)}


def test_the_demo_ends_in_a_verdict_for_both_runs_with_labels_in_between(demo_runs):
    first = demo_runs.first
    runs = first["runs"]

    assert [r["verdict"] for r in runs] == ["PASS", "PASS"], [r["reasons"] for r in runs]
    assert all(Path(r["report"]).is_file() and Path(r["evidence"], "_COMPLETE").is_file() for r in runs)
    assert first["labels"]["cases_reviewed"] > 0 and first["labels"]["chargebacks"]["inserted"] > 0
    assert demo.exit_code(first) == 0
    told = demo.describe(first)
    assert "left running: " in told and "kafka on port" in told and "postgres on port" in told, told
    assert "services down" in told
    noise = ("NativeCodeLoader", "log4j2-defaults", "%4|", "Traceback", "Truncated the string representation")
    assert not [line for line in noise if line in demo_runs.stderr], demo_runs.stderr[-2000:]


def test_the_same_seed_again_admits_nothing_twice_and_still_closes(demo_runs):
    again = demo_runs.second["runs"]

    assert [r["verdict"] for r in again] == ["PASS", "PASS"], [r["reasons"] for r in again]
    assert [r["admitted"] for r in again] == [0, 0]
    assert demo_runs.second["labels"]["chargebacks"]["inserted"] == 0


def test_every_commit_of_every_table_the_runs_wrote_names_its_run(spark, demo_runs):
    written = written_tables(spark, demo_runs.local.tables_root)
    runs = {r["run_id"] for demo_run in (demo_runs.first, demo_runs.second) for r in demo_run["runs"]}
    unstamped = {}
    for name, path in written.items():
        stamps = [json.loads(r.userMetadata or "{}").get("run_id")
                  for r in delta.history(spark, path).select("userMetadata").collect()]
        if set(stamps) - runs:
            unstamped[name] = stamps

    assert len(written) >= 20, sorted(written)
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
