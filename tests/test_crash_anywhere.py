"""Crash anywhere: a whole run (``jobs/run.py``) is killed with SIGKILL at seeded random points across
every stage, restarted each time, and its final state equals a crash-free run of the same input, row
for row, in admitted, quarantine, decisions, actions, audit, cases and labels; and its closure passes.

The default suite kills at ``CRASH_POINTS`` (3) points; the slow mode kills at 20 or more:

    CRASH_POINTS=24 bash scripts/test.sh tests/test_crash_anywhere.py

``CRASH_SEED`` picks the points (printed by the test, so a failure can be replayed exactly).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from common import catalog
from common.config import load_settings
from helpers import PASSWORD_ENV, unique
from human_loop import label_import, migrate
from human_loop.connection import connect
from jobs import run
from simulator.producer import simulate

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
RUN = "r-crash-1"
PRODUCTS = ("transactions_view", "account_features", "merchant_risk")
# Every place a run can die between a durable write and what makes it count, in pipeline order.
# A card block's points are at the first batch that blocks a card (``@*``): which batch that is depends on
# the day the traffic falls on (a run after midnight blocked none in batch 1, and a kill there never fired).
STREAM_POINTS = [f"{point}@{batch}" for batch in (0, 1, 2) for point in (
    "ingest.after_quarantine", "ingest.after_duplicates", "ingest.after_admitted", "ingest.before_commit")] + [
    f"{point}@{batch}" for batch in (0, 1) for point in (
        "decide.before_commit", "cases.after_db", "cases.before_commit")] + [
    "decide.after_effects@*", "decide.after_ledger@*"]
JOB_POINTS = ([f"run.before_{step}@0" for step in run.STEPS] + ["export.before_heartbeat@0"]
              + [f"{job}.{name}.{where}@0" for name in PRODUCTS
                 for job, where in (("build", "before_receipt"), ("certify", "before_verdict"),
                                    ("certify", "before_receipt"))]
              + ["close.before_marker@0"])
ORDER = ["run.before_migrate", "run.before_ingest", "ingest.", "run.before_export-labels", "export.",
         "run.before_products", "build.transactions_view", "certify.transactions_view", "build.account_features",
         "certify.account_features", "build.merchant_risk", "certify.merchant_risk", "run.before_decide", "decide.",
         "run.before_cases", "cases.", "run.before_close", "close."]
COMPARED = {
    "bronze.admitted_events": ("event_id", "account_id", "amount_minor", "event_time", "partition", "offset",
                               "payload_sha256", "run_id", "batch_id"),
    "bronze.quarantine": ("partition", "offset", "reason", "payload_sha256", "run_id", "batch_id"),
    "bronze.duplicate_events": ("event_id", "partition", "offset", "run_id"),
    "decision.decisions": ("decision_id", "event_id", "outcome", "score", "reasons", "policy_version", "event_run_id"),
    "decision.actions": ("action_id", "decision_id", "action_type", "reason"),
    "decision.audit": ("audit_id", "kind", "subject_id", "what", "reasons"),
    "labels.label_events": ("label_event_id", "idempotency_key", "account_id", "event_id", "label"),
}


def stage(point: str) -> int:
    return next(i for i, prefix in enumerate(ORDER) if point.startswith(prefix))


STREAM_FAMILIES = ("ingest.", "decide.", "cases.")
JOB_FAMILIES = ("run.", "export.", "build.", "certify.", "close.")


def reachable_points(spark, settings) -> set[str]:
    """The points a run of this input passes, from the crash-free run's receipts: a batch writes an outcome
    table (and passes its point) only when it has rows for it, blocks cards only when it declines."""
    def receipts(table: str) -> list[dict]:
        return [row.asDict() for row in spark.read.format("delta").load(catalog.location(settings.tables_root, table))
                .collect()]

    points = set(JOB_POINTS)
    for r in receipts("meta.ingest_receipts"):
        points |= {f"ingest.after_{table}@{r['batch_id']}" for table, rows in (
            ("quarantine", r["quarantined"]), ("duplicates", r["duplicates"]), ("admitted", r["admitted"])) if rows}
        points.add(f"ingest.before_commit@{r['batch_id']}")
    decided = receipts("meta.decide_receipts")
    points |= {f"decide.before_commit@{r['batch_id']}" for r in decided}
    if any(r["cards_blocked"] for r in decided):
        points |= {"decide.after_effects@*", "decide.after_ledger@*"}
    for r in receipts("meta.case_receipts"):
        points |= {f"cases.after_db@{r['batch_id']}", f"cases.before_commit@{r['batch_id']}"}
    return points


def chosen_points(count: int, seed: int, reachable: set[str]) -> list[str]:
    """``count`` distinct reachable points, spread over every stage: one family after another, each drawn at
    random, the streams' families first (so three points are one kill each in ingest, decide and cases)."""
    rng = random.Random(seed)
    families = [rng.sample(group, len(group)) for group in (STREAM_FAMILIES, JOB_FAMILIES)]
    pools = [[p for p in STREAM_POINTS + JOB_POINTS if p.startswith(family) and p in reachable]
             for family in families[0] + families[1]]
    for pool in pools:
        rng.shuffle(pool)
    picked = []
    while len(picked) < count and any(pools):
        for pool in pools:
            if pool and len(picked) < count:
                picked.append(pool.pop())
    return sorted(picked, key=lambda p: (stage(p), p))


# A policy that acts on about half the events (the defaults act on ~3%): on this small traffic every effect
# path (cases opened, cards blocked, the ledger) then has rows for the kills to land between.
EAGER_POLICY = ('[decision]\npolicy_version = "policy-crashtest-eager"\nhigh_amount_minor = 150000\nvelocity_1d = 12\n'
                'many_countries_30d = 4\n')


def config_for(root: Path, db: dict, bootstrap: str, topic: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "run.toml"
    path.write_text(
        f'env = "crashtest"\n[storage]\ntables_root = "{root}/tables"\ncheckpoints_root = "{root}/checkpoints"\n'
        f'evidence_root = "{root}/evidence"\n[spark]\nshuffle_partitions = 2\n'
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ntopic = "{topic}"\npartitions = 2\nmax_offsets_per_trigger = 120\n'
        f'[postgres]\nhost = "{db["host"]}"\nport = {db["port"]}\ndatabase = "{db["dbname"]}"\n'
        f'user = "{db["user"]}"\npassword_env = "{PASSWORD_ENV}"\n'
        f'{EAGER_POLICY}max_files_per_trigger = 2\n', encoding="utf-8")
    return path


def lane(root: Path, new_database, bootstrap: str, topic: str, feed: Path):
    db = new_database()
    os.environ[PASSWORD_ENV] = db["password"]
    migrate.migrate(db, run_id=RUN)
    with connect(db) as conn:
        label_import.import_labels(conn, label_import.read_feed(feed))
    config = config_for(root, db, bootstrap, topic)
    return config, load_settings(path=config, home=root), db


def killed_run(config: Path, home: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LEDGERLANE_FAULT"}
    if fault:
        env["LEDGERLANE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "jobs.run", "--config", str(config), "--home", str(home), "--run-id",
                           RUN], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def rows(spark, settings, table: str, columns: tuple[str, ...]) -> list[tuple]:
    frame = spark.read.format("delta").load(catalog.location(settings.tables_root, table)).select(*columns)
    return sorted(tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in frame.collect())


def cases(db: dict) -> list[tuple]:
    with psycopg.connect(**db) as conn:
        return sorted(conn.execute("select action_id, account_id, event_id, decision_id, reason from "
                                   "human_loop.cases").fetchall())


def test_a_run_killed_anywhere_ends_as_a_crash_free_run_row_for_row(spark, kafka_bootstrap, new_database, tmp_path):
    count = int(os.environ.get("CRASH_POINTS", "3"))
    seed = int(os.environ.get("CRASH_SEED", "20261212"))
    topic = unique("crash")
    base = load_settings(path=config_for(tmp_path, {"host": "h", "port": 1, "dbname": "d", "user": "u",
                                                    "password": ""}, kafka_bootstrap, topic), home=tmp_path)
    sent = simulate(base, events=240, seed=77, duplicate_rate=0.03, conflict_rate=0.01, bad_rate=0.05, partitions=2,
                    start=datetime.now(timezone.utc) - timedelta(days=4), days=3)
    feed = tmp_path / "chargebacks.jsonl"
    label_import.write_jsonl(label_import.chargebacks_from_ground_truth(label_import.read_jsonl(Path(sent.ground_truth))),
                             feed)

    clean_config, clean, clean_db = lane(tmp_path / "clean", new_database, kafka_bootstrap, topic, feed)
    reference = run.run(spark, clean, RUN)
    assert reference["verdict"] == "PASS", reference["steps"].get("close")
    points = chosen_points(count, seed, reachable_points(spark, clean))
    print(f"crash points (CRASH_SEED={seed}): {points}")

    crashed_config, crashed, crashed_db = lane(tmp_path / "crashed", new_database, kafka_bootstrap, topic, feed)
    outcomes = []
    for point in points:
        done = killed_run(crashed_config, tmp_path / "crashed", point)
        outcomes.append((point, done.returncode))
        assert done.returncode in (-9, 0), f"{point}: {done.stderr[-3000:]}"
    final = killed_run(crashed_config, tmp_path / "crashed", None)

    assert final.returncode == 0, final.stderr[-3000:]
    assert sum(code == -9 for _, code in outcomes) >= min(count, 3), outcomes
    for table, columns in COMPARED.items():
        assert rows(spark, crashed, table, columns) == rows(spark, clean, table, columns), table
    assert cases(crashed_db) == cases(clean_db)
    with psycopg.connect(**crashed_db) as conn:
        blocks = conn.execute("select count(*), count(distinct action_id) from human_loop.card_controls").fetchone()
    assert blocks[0] == blocks[1]
    assert (Path(crashed.evidence_root) / RUN / "_COMPLETE").is_file()
