"""Closure benchmark (not a test): what closing a run costs as the run's data grows 10x, and next to its ingest.

    .venv/bin/python -m benchmarks.closure_bench [--events 10000] [--rounds 2] [--quick] [--home PATH] [--json PATH]

Two complete runs, each in a lane of its own (configuration, tables, checkpoints, evidence, PostgreSQL
database, Kafka topic): one of ``--events`` valid events, one of 10x as many (each plus the simulator's
retries, conflicts and bad records), with the chargebacks known before the run imported, each made as
``ledgerlane run`` makes it (``jobs/run.py``: migrate, ingest, labels, products, decide, cases, close).

The closure is timed where it really runs: the run's own ``close`` step (its wall seconds as the run
reports them, and the driver JVM's CPU seconds from the step's start to the run's end). It is not timed
by closing again: closing a PASS run only verifies its bundle, and a re-closure into another evidence
folder starts from the history watermarks the first closure recorded, so neither is the same work.

1. closure time at 10x the data ÷ at 1x (target <= 1.3: the closure reads Delta logs, checkpoint
   offsets and receipts, and of the data only the run's rows, one column);
2. closure time ÷ the same run's ingest step (reported);
3. where the close step spends its time at 1x and at 10x (wall seconds of the functions that read the
   logs, the checkpoints and the run's rows, prove, and write the bundle): which part grows with the data.

A small warm-up run (not counted) comes first, so neither size closes on a cold JVM. Every round builds
two new lanes, the sizes in alternating order (``--rounds``, default 2); figures are from the run with
the fastest close step of each size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

from benchmarks.harness import (Section, alternating, drop_database, jvm_cpu_seconds, load_average, ratio,
                                scratch_database)
from common import local_services
from common.config import Settings, load_settings
from common.spark import build_session
from human_loop import label_import, migrate
from human_loop.connection import connect
from jobs import closure
from jobs import run as whole_run
from jobs.closure import facts, proofs
from services import manager
from simulator.producer import simulate

TARGET = 1.3
FACTOR = 10
RATES = {"duplicate_rate": 0.01, "conflict_rate": 0.002, "bad_rate": 0.02}   # the simulator's defaults
PASSWORD_ENV = "LEDGERLANE_BENCH_CLOSURE_PG_PASSWORD"   # the lanes' databases belong to the home's cluster
# Where the close step spends its time: the functions that do each part (only the closure calls them).
CLOSE_PARTS = (
    (facts, ("bus_now", "stream_facts", "run_commits", "history_rewrites", "admitted_facts", "decision_facts",
             "action_facts", "audit_facts", "effect_facts", "certification_facts", "migration_facts",
             "record_watermarks")),
    (proofs, ("run_all",)),
    (closure, ("write_bundle",)),
)
LABELS = {"run_all": "the proofs themselves (pure)", "write_bundle": "writing the bundle (copies, lineage, report)"}
REST = "everything else (lock, basis, receipts, offsets, product statuses, archive)"


@dataclass
class Lane:
    label: str
    root: Path
    settings: Settings
    db: dict


@dataclass
class Measured:
    events: int
    records: int
    seconds: dict[str, float]                     # wall seconds per step, as the run reports them
    cpu: dict[str, float] = field(default_factory=dict)   # driver JVM CPU seconds per step
    ingest: dict = field(default_factory=dict)
    close: dict = field(default_factory=dict)
    total: float = 0.0
    load: float = 0.0                             # 1-minute load average when the run ended
    parts: dict[str, float] = field(default_factory=dict)  # wall seconds per part of the close step


def say(message: str) -> None:
    print(f"  · {message}", flush=True)


# ---- a lane: its own database, topic, tables, checkpoints and evidence ------------------------------

def lane_settings(home: Path, root: Path, db: dict, topic: str) -> Settings:
    """The local profile with this lane's storage, topic and database (its password by environment, as always)."""
    os.environ[PASSWORD_ENV] = db["password"]
    return load_settings("local", home=home, overrides={
        "storage": {"tables_root": str(root / "tables"), "checkpoints_root": str(root / "checkpoints"),
                    "evidence_root": str(root / "evidence")},
        "kafka": {"topic": topic, "consumer_group": f"group-{topic}"},
        "postgres": {"host": db["host"], "port": db["port"], "database": db["dbname"], "user": db["user"],
                     "password_env": PASSWORD_ENV},
    })


def make_lane(home: Path, scratch: Path, admin: dict, label: str) -> Lane:
    root = scratch / label
    root.mkdir(parents=True)
    db = scratch_database(admin, "ll_bench_close")
    topic = f"bench-close-{label}-{uuid.uuid4().hex[:8]}"
    return Lane(label, root, lane_settings(home, root, db, topic), db)


def fill(lane: Lane, events: int, run_id: str) -> int:
    """Traffic onto the lane's topic; the database migrated and the chargebacks known before the run imported."""
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=5)
    sent = simulate(lane.settings, events=events, seed=21, partitions=3, start=start, days=3, **RATES)
    feed = lane.root / "chargebacks.jsonl"
    label_import.write_jsonl(label_import.chargebacks_from_ground_truth(
        label_import.read_jsonl(Path(sent.ground_truth))), feed)
    migrate.migrate(lane.db, run_id=run_id)
    with connect(lane.db) as conn:
        label_import.import_labels(conn, label_import.read_feed(feed))
    return sent.records


# ---- one whole run, timed per step ------------------------------------------------------------------

@contextmanager
def close_clock() -> Iterator[dict[str, float]]:
    """Wall seconds per part of the closure, by wrapping the function that does each part."""
    spent: dict[str, float] = defaultdict(float)
    originals = [(module, name, getattr(module, name)) for module, names in CLOSE_PARTS for name in names]

    def clocked(name, work):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return work(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return call

    for module, name, work in originals:
        setattr(module, name, clocked(name, work))
    try:
        yield spent
    finally:
        for module, name, work in originals:
            setattr(module, name, work)


def timed_run(spark, lane: Lane, events: int, records: int, run_id: str) -> Measured:
    """``jobs/run.run`` as ``ledgerlane run`` calls it; driver CPU read at every step boundary."""
    marks: list[tuple[str, float]] = []
    with close_clock() as parts:
        summary = whole_run.run(spark, lane.settings, run_id, progress=lambda m: None,
                                before_step=lambda name: marks.append((name, jvm_cpu_seconds(spark))))
    marks.append(("end", jvm_cpu_seconds(spark)))
    steps = summary["steps"]
    if summary["verdict"] != "PASS":
        raise SystemExit(f"run {run_id} ({lane.label}) closed {summary['verdict']}: "
                         f"{steps.get('close', {}).get('reasons')}")
    cpu = {name: after - before for (name, before), (_, after) in zip(marks, marks[1:])}
    seconds = {name: s["step_seconds"] for name, s in steps.items()}
    parts = {**parts, REST: seconds["close"] - sum(parts.values())}
    return Measured(events, records, seconds, cpu, steps["ingest"], steps["close"], summary["seconds"],
                    load_average(), parts)


def one_lane(spark, home: Path, scratch: Path, admin: dict, events: int, label: str, made: list[Lane]) -> Measured:
    lane = make_lane(home, scratch, admin, label)
    made.append(lane)
    run_id = f"r-bench-close-{label}"
    say(f"{label}: simulating {events:,} valid events onto {lane.settings.kafka.topic}")
    records = fill(lane, events, run_id)
    say(f"{label}: whole run {run_id} over {records:,} records")
    measured = timed_run(spark, lane, events, records, run_id)
    say(f"{label}: PASS in {measured.total} s; ingest {measured.seconds['ingest']:.1f} s, "
        f"close {measured.seconds['close']:.1f} s (load {measured.load})")
    return measured


def rounds_of(spark, home: Path, scratch: Path, admin: dict, sizes: dict[str, int], rounds: int,
              made: list[Lane]) -> dict[str, list[Measured]]:
    runs: dict[str, list[Measured]] = defaultdict(list)
    for r, order in enumerate(alternating(list(sizes), rounds)):
        for size in order:
            runs[size].append(one_lane(spark, home, scratch, admin, sizes[size], f"{size}-{r}", made))
    return runs


# ---- the report -------------------------------------------------------------------------------------

def report(section: Section, runs: dict[str, list[Measured]]) -> None:
    best = {size: min(ms, key=lambda m: m.seconds["close"]) for size, ms in runs.items()}
    one, ten = best["1x"], best[f"{FACTOR}x"]
    for size, m in best.items():
        section.add(f"{size}: {m.events:,} valid events ({m.records:,} records, "
                    f"{m.ingest['batches']} ingest batch(es)): whole run, ingest, close (s)",
                    f"{m.total:.1f}, {m.seconds['ingest']:.1f}, {m.seconds['close']:.1f} (load {m.load} at its end)")
        section.add(f"{size}: close step, driver JVM CPU s; proofs; files copied into the bundle",
                    f"{m.cpu['close']:.1f}; {m.close['checks']}; {m.close['copied']}")
    closes = {size: ", ".join(f"{m.seconds['close']:.1f}" for m in ms) for size, ms in runs.items()}
    if len(runs["1x"]) > 1:
        section.add("close step per round (s)", "; ".join(f"{size}: {text}" for size, text in closes.items()))
    wall = ratio(ten.seconds["close"], one.seconds["close"])
    section.add(f"closure time at {FACTOR}x the data ÷ 1x", f"{wall:.2f} (by driver CPU "
                f"{ratio(ten.cpu['close'], one.cpu['close']):.2f})", target=f"<= {TARGET}", met=wall <= TARGET)
    for size, m in best.items():
        section.add(f"{size}: closure time ÷ the run's ingest time",
                    f"{ratio(m.seconds['close'], m.seconds['ingest']):.2f} (by driver CPU "
                    f"{ratio(m.cpu['close'], m.cpu['ingest']):.2f})")
    report_parts(section, one, ten)


def report_parts(section: Section, one: Measured, ten: Measured) -> None:
    """Where the close step spends its time, at 1x and 10x: which part grows with the data."""
    for part in sorted(ten.parts, key=lambda name: -ten.parts[name]):
        a, b = one.parts.get(part, 0.0), ten.parts[part]
        section.add(f"close step, {LABELS.get(part, part.replace('_', ' '))}: 1x / {FACTOR}x (s)",
                    f"{a:.2f} / {b:.2f} ({ratio(b, a):.1f}x)" if a >= 0.005 else f"{a:.2f} / {b:.2f}")


def cleanup(admin: dict, made: list[Lane], scratch: Path) -> None:
    for lane in made:
        try:
            drop_database(admin, lane.db)
        except psycopg.Error as exc:
            print(f"warning: could not drop {lane.db['dbname']}: {exc}", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)
    os.environ.pop(PASSWORD_ENV, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="closure_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help=f"valid events of the 1x run (the other: {FACTOR}x)")
    parser.add_argument("--warm-up", type=int, default=500, help="valid events of the warm-up run (not counted)")
    parser.add_argument("--rounds", type=int, default=2, help="new lanes per round, sizes in alternating order")
    parser.add_argument("--quick", action="store_true", help="smoke size: 1,000 and 10,000 events, one round")
    parser.add_argument("--home", default=os.environ.get("LEDGERLANE_HOME"), help="ledgerlane home with services")
    parser.add_argument("--json", default=None, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.warm_up, args.rounds = 1_000, 300, 1
    started = time.perf_counter()
    sizes = {"1x": args.events, f"{FACTOR}x": args.events * FACTOR}
    section = Section("Closure", "Two whole runs (`jobs/run.py`), each in its own lane (tables, checkpoints, "
                      f"evidence, database, topic): {args.events:,} and {args.events * FACTOR:,} valid events "
                      "(+1% retries, 0.2% conflicts, 2% bad records), 3 partitions, local defaults; the closure "
                      f"timed as the run's own `close` step; a {args.warm_up:,}-event warm-up run first; best of "
                      f"{args.rounds} round(s), sizes alternating.")
    settings = load_settings("local", home=args.home)
    manager.up(settings.home, settings.cache)
    admin = local_services.postgres_admin_params(settings.home)
    scratch = Path(tempfile.mkdtemp(prefix="ledgerlane-bench-closure-"))
    made: list[Lane] = []
    spark = build_session(settings, "ledgerlane-bench-closure")
    try:
        one_lane(spark, settings.home, scratch, admin, args.warm_up, "warm-up", made)
        report(section, rounds_of(spark, settings.home, scratch, admin, sizes, args.rounds, made))
    finally:
        spark.stop()
        cleanup(admin, made, scratch)
    return section.finish(started, args.json)


if __name__ == "__main__":
    sys.exit(main())
