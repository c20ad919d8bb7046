"""Batch-lane benchmark (not a test): certification time / build time per product, GE and native side by side.

    .venv/bin/python -m benchmarks.batch_bench [--events 50000] [--reps 3] [--home PATH]

One synthetic run (admitted events over two weeks, fraud labels some of which arrive after the cut-off)
in a scratch home. Each repetition rebuilds every product (replacing the run's slice) and certifies the
new version with the Great Expectations adapter and with the native single-pass aggregate, each twice: as
`ledgerlane job certify` runs (reading the run's receipts) and as `ledgerlane rerun` runs it (receipts in
hand). The engines swap order every round, so neither always runs first on a freshly built version. The
first repetition warms the JVM and is not counted; figures are medians. Target: certify / build <= 0.5.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.harness import Section, alternating
from common import catalog, delta
from common.config import load_settings
from products import NAMES
from common.spark import build_session
from jobs import build, certify, receipts
from jobs.batch_context import BatchContext

RUN_ID = "r-batch-bench"
START = datetime(2026, 10, 1, tzinfo=timezone.utc)
DAYS = 14
CUTOFF = START + timedelta(days=DAYS)
TARGET = 0.5
ENGINES = ("great_expectations", "native")


def synthetic_admitted(spark: SparkSession, events: int) -> DataFrame:
    """``events`` admitted events of one run, in the table's column order (see jobs.build.admitted_schema)."""
    n = F.col("id")
    at = F.timestamp_seconds(F.lit(int(START.timestamp())) + (n * 7919) % (DAYS * 86_400))
    accounts, merchants = max(20, events // 50), 200
    columns = {
        "schema_version": F.lit(1).cast("long"), "event_id": F.format_string("evt-%09d", n),
        "account_id": F.format_string("acct-%07d", n % accounts), "card_id": F.format_string("card-%07d", n % accounts),
        "merchant_id": F.format_string("m-%04d", (n * 31) % merchants), "merchant_name": F.lit("Bench merchant"),
        "mcc": F.lit("5411"), "amount_minor": 100 + (n * 37) % 50_000, "currency": F.when(n % 10 == 0, "JPY").otherwise("EUR"),
        "event_time": at, "channel": F.when(n % 3 == 0, "ecommerce").otherwise("card_present"),
        "country": F.lit("DE"), "card_present": n % 3 != 0, "device_id": F.lit(None).cast("string"),
        "ip_address": F.lit(None).cast("string"), "event_date": F.to_date(at), "topic": F.lit("ledgerlane.transactions"),
        "partition": (n % 3).cast("int"), "offset": n, "kafka_timestamp": at, "payload_sha256": F.sha2(n.cast("string"), 256),
        "run_id": F.lit(RUN_ID), "app_id": F.lit("bench"), "batch_id": (n / 10_000).cast("long"), "admitted_at": at,
    }
    return spark.range(events).select(*[expr.alias(name) for name, expr in columns.items()])


def synthetic_labels(spark: SparkSession, events: int) -> DataFrame:
    """Fraud labels on 2% of events, recorded a day after the event: the last day's arrive after the cut-off."""
    admitted = synthetic_admitted(spark, events).where(F.col("offset") % 50 == 0)
    recorded = F.col("event_time") + F.expr("INTERVAL 1 DAY")
    return admitted.select(
        F.col("offset").alias("label_event_id"), F.concat(F.lit("key-"), F.col("event_id")).alias("idempotency_key"),
        "account_id", "event_id", F.lit("fraud").alias("label"), F.lit("chargeback").alias("source"),
        F.lit("bench").alias("actor"), F.col("event_time").alias("observed_at"), recorded.alias("recorded_at"),
        F.lit(None).cast("long").alias("corrects_label_event_id"), F.lit("").alias("note"),
        F.lit("bench-db").alias("source_instance"), F.lit("r-bench-export").alias("export_run_id"),
    )


def seed(spark: SparkSession, tables_root: str, events: int) -> None:
    for table, frame in (("bronze.admitted_events", synthetic_admitted(spark, events)),
                         ("labels.label_events", synthetic_labels(spark, events))):
        delta.append(frame, catalog.location(tables_root, table), table, "r-bench-seed")


def jobs_in(spark: SparkSession, tag: str, action) -> tuple[float, int, object]:
    """Wall time and number of Spark jobs of ``action``."""
    spark.sparkContext.setJobGroup(tag, tag)
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    spark.sparkContext.setJobGroup("", "")
    return seconds, len(spark.sparkContext.statusTracker().getJobIdsForGroup(tag)), result


def one_round(spark: SparkSession, ctx: BatchContext, rep: int) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    engines = alternating(list(ENGINES), rep + 1)[rep]
    for name in NAMES:
        build_s, build_jobs, _ = jobs_in(spark, f"{rep}-{name}-build",
                                         lambda: build.build(spark, ctx, name, RUN_ID, cutoff=CUTOFF))
        figures[name] = {"build_s": build_s, "build_jobs": build_jobs}
        for engine in engines:
            seconds, jobs, summary = jobs_in(spark, f"{rep}-{name}-{engine}",
                                             lambda engine=engine: certify.certify(spark, ctx, name, RUN_ID, engine=engine))
            figures[name].update({f"{engine}_s": seconds, f"{engine}_jobs": jobs,
                                  f"{engine}_checks_s": assert_pass(summary, name, engine)["timings"]["checks_s"]})
        # As `ledgerlane rerun` certifies: it read the run's receipts once, up front, and holds them since.
        held = receipts.for_run(spark, ctx.tables_root, RUN_ID)
        for engine in engines:
            seconds, jobs, summary = jobs_in(spark, f"{rep}-{name}-{engine}-rerun", lambda engine=engine: certify.certify(
                spark, ctx, name, RUN_ID, engine=engine, run_receipts=held))
            held.append(receipts.as_read(assert_pass(summary, name, engine)))
            figures[name].update({f"{engine}_rerun_s": seconds, f"{engine}_rerun_jobs": jobs})
    return figures


def assert_pass(summary: dict, name: str, engine: str) -> dict:
    if summary["status"] != "PASS":
        raise SystemExit(f"{name} certified {summary['status']} by {engine}: {summary['reasons']}")
    return summary


def report(section: Section, rounds: list[dict]) -> Section:
    median = lambda name, key: statistics.median(r[name][key] for r in rounds)  # noqa: E731
    for name in NAMES:
        build_s = median(name, "build_s")
        for engine in ENGINES:
            cert_s, checks_s = median(name, f"{engine}_s"), median(name, f"{engine}_checks_s")
            rerun_s = median(name, f"{engine}_rerun_s")
            section.add(f"{name}, {engine}: build / certify / in rerun / checks only (s)",
                        f"{build_s:.2f} / {cert_s:.2f} / {rerun_s:.2f} / {checks_s:.2f}; "
                        f"jobs {median(name, f'{engine}_jobs'):.0f} / {median(name, f'{engine}_rerun_jobs'):.0f}")
            section.add(f"{name}, {engine}: certify ÷ build", f"{cert_s / build_s:.2f}", target=f"<= {TARGET}",
                        met=cert_s / build_s <= TARGET)
            section.add(f"{name}, {engine}: certify in rerun ÷ build", f"{rerun_s / build_s:.2f}",
                        target=f"<= {TARGET}", met=rerun_s / build_s <= TARGET)
    section.note(f"default engine: {certify.DEFAULT_ENGINE}; 'jobs' counts every Spark job of the certify job; 'in "
                 "rerun' is the same certify job with the run's receipts already in hand, as `ledgerlane rerun` runs it")
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batch_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=2, help="measured rounds (after one warm-up round)")
    parser.add_argument("--home", default=None, help="scratch home (default: a new temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke size: 5,000 events, one measured round")
    parser.add_argument("--json", default=None, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.reps = 5_000, 1
    started = time.perf_counter()
    section = Section("Batch lane (certification)", f"{args.events:,} admitted events over {DAYS} days, every product "
                      f"rebuilt and certified by both engines each round; medians of {args.reps} rounds after one "
                      "warm-up round; engine order alternates between rounds.")
    home = Path(tempfile.mkdtemp(prefix="ledgerlane-batch-bench-", dir=args.home))
    settings = load_settings("local", home=home, overrides={"spark": {"shuffle_partitions": 2}})
    spark = build_session(settings, "ledgerlane-batch-bench")
    ctx = BatchContext.from_settings(settings)
    seed(spark, settings.tables_root, args.events)
    try:
        rounds = [one_round(spark, ctx, rep) for rep in range(args.reps + 1)][1:]
    finally:
        spark.stop()    # before the scratch home goes: Delta may still be writing checksum files into it
        shutil.rmtree(home, ignore_errors=True)
    return report(section, rounds).finish(started, args.json)


if __name__ == "__main__":
    sys.exit(main())
