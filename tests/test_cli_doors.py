"""The README's commands through the CLI itself, and a quiet console for people who did not ask for noise.

(`stream ingest` through the CLI: tests/test_ingest_fail_closed.py; `job export-labels`, `labels`, `cases`,
`db`: tests/human_loop/test_hl_cli.py; `rerun`, `job certify`: tests/batch/test_batch_lane.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli, make_home

REPO = Path(__file__).resolve().parent.parent
# Spark and librdkafka start-up chatter a person running the CLI must not see without --verbose.
NOISE = ("NativeCodeLoader", "log4j2-defaults", "Setting default log level", "%4|", "%5|", "%6|",
         "WARN SparkSession", "Traceback")


def ledgerlane(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_catalog_lists_every_table_including_the_products(settings):
    code, out, _ = cli("--home", str(settings.home), "catalog", "--json")

    tables = json.loads(out)
    assert code == 0
    assert {"bronze.admitted_events", "meta.topic_epochs", "silver.transactions_view", "gold.merchant_risk"} <= set(tables)
    assert tables["gold.account_features"] == f"{settings.tables_root}/gold/account_features"


@pytest.mark.slow
def test_services_up_status_down_through_the_cli():
    home = make_home("ledgerlane-cli-services-")
    try:
        up = ledgerlane("--home", str(home), "services", "up", "--json")
        status = ledgerlane("--home", str(home), "services", "status", "--json")
        down = ledgerlane("--home", str(home), "services", "down", "--json")
        after = ledgerlane("--home", str(home), "services", "status", "--json")
    finally:
        ledgerlane("--home", str(home), "services", "down")
        shutil.rmtree(home, ignore_errors=True)

    assert up.returncode == 0, up.stderr
    assert {name: s["healthy"] for name, s in json.loads(up.stdout).items()} == {"postgres": True, "kafka": True}
    assert status.returncode == 0 and all(s["healthy"] for s in json.loads(status.stdout).values())
    assert down.returncode == 0 and json.loads(down.stdout) == {"postgres": "stopped", "kafka": "stopped"}
    assert after.returncode != 0 and not any(s["healthy"] for s in json.loads(after.stdout).values())


@pytest.mark.slow
def test_job_build_through_the_cli(spark, tmp_path):
    from batch.inputs import CUTOFF, good_events, scratch_settings, write_admitted

    local, config = scratch_settings(tmp_path / "lane")
    write_admitted(spark, local.tables_root, good_events("r-cli-build"))

    code, out, err = cli("--config", str(config), "--home", str(local.home), "job", "build", "transactions_view",
                         "--run-id", "r-cli-build", "--cutoff", CUTOFF.isoformat(), "--json")

    assert code == 0, err
    receipt = json.loads(out)
    assert (receipt["status"], receipt["outputs"][0]["rows"]) == ("BUILT", 6)


@pytest.mark.slow
def test_a_spark_job_through_the_cli_prints_no_start_up_noise(settings, services):
    done = ledgerlane("--home", str(settings.home), "job", "smoke", "--run-id", "r-quiet-1")

    assert done.returncode == 0, done.stderr[-3000:]
    assert "smoke OK" in done.stdout
    assert [noise for noise in NOISE if noise in done.stderr] == [], done.stderr[-3000:]


def test_an_error_is_one_paragraph_and_its_trace_only_with_verbose(tmp_path):
    quiet = ledgerlane("--home", str(tmp_path), "job", "build", "transactions_view", "--run-id", "r x")
    verbose = ledgerlane("--home", str(tmp_path), "--verbose", "job", "build", "transactions_view", "--run-id", "r x")

    assert quiet.returncode == verbose.returncode == 2
    assert quiet.stderr.strip().startswith("error: --run-id: run id 'r x' is invalid") and "Traceback" not in quiet.stderr
    assert "Traceback" in verbose.stderr


@pytest.mark.slow
def test_simulate_through_the_cli_puts_its_records_on_the_topic(settings, kafka_bootstrap, tmp_path):
    from common import kafka_admin
    from helpers import isolated, unique, write_config

    local = isolated(settings, tmp_path, unique("cli-sim"))
    config = write_config(local, tmp_path / "sim.toml", kafka_bootstrap)

    code, out, err = cli("--config", str(config), "--home", str(local.home), "simulate", "--events", "60", "--seed",
                         "5", "--partitions", "2", "--json")

    assert code == 0, err
    summary = json.loads(out)
    ends = kafka_admin.topic_snapshot(kafka_bootstrap, local.kafka.topic)["partitions"]
    assert summary["records"] == sum(p["end_offset"] for p in ends) >= 60
