"""Human-loop benchmarks at 1M label events (not a test): each ratio is measured side by side in one run.

    .venv/bin/python benchmarks/labels_bench.py [--rows 1000000] [--home PATH] [--skip-spark]

1. single-account "labels as of T" vs a primary-key lookup, median latency  (target <= 2x)
2. bulk idempotent import vs raw COPY of the same rows into an identical table  (target >= 0.3 throughput)
3. Spark point-in-time join (``labels_as_of``) vs a plain equi-join on the same keys  (target <= 2x)

Uses (and starts, if needed) the local PostgreSQL of ``--home``; scratch databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from human_loop import label_import, labels, migrate
from human_loop.connection import connect

ACCOUNTS_PER_ROW = 10  # 1M events over 100k accounts: ~10 labels per account
BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
RAW_COPY = """
copy human_loop.label_events
     (idempotency_key, account_id, event_id, label, source, actor, observed_at, corrects_label_event_id, note)
from stdin"""


def feed(rows: int) -> list[tuple[int, tuple]]:
    """Deterministic feed rows in the importer's shape: (line, values in CLIENT_FIELDS order)."""
    accounts = max(1, rows // ACCOUNTS_PER_ROW)
    choices = ("fraud", "legitimate", "suspicious")
    return [
        (i, (f"cb-{i:09d}", f"acct-{i % accounts:07d}", f"ev-{i:09d}", choices[i % 3], "chargeback", "chargeback-feed",
             BASE + timedelta(seconds=i), None, ""))
        for i in range(1, rows + 1)
    ]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# --- PostgreSQL ----------------------------------------------------------------------------------


def scratch_database(admin: dict) -> dict:
    name = f"ll_bench_{secrets.token_hex(4)}"
    with psycopg.connect(**{**admin, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    params = {**admin, "dbname": name}
    migrate.migrate(params)
    return params


def drop_database(admin: dict, params: dict) -> None:
    with psycopg.connect(**{**admin, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(params["dbname"])))


def raw_copy(params: dict, rows: list[tuple[int, tuple]]) -> None:
    """COPY straight into label_events (same constraints and triggers): the speed limit for an import."""
    with connect(params) as conn, conn.cursor() as cur:
        with cur.copy(RAW_COPY) as copy:
            for _, values in rows:
                copy.write_row(values)


def bulk_import(params: dict, rows: list[tuple[int, tuple]]) -> dict:
    with connect(params) as conn:
        return label_import.import_labels(conn, iter(rows))


def lookup_latencies(params: dict, accounts: int, max_id: int, samples: int) -> tuple[list[float], list[float]]:
    """Interleaved single-account as-of and primary-key lookups (same columns, both auto-prepared)."""
    rng = random.Random(7)
    as_of_sql = labels._as_of_query("account")
    pk_sql = sql.SQL("select {cols} from human_loop.label_events where label_event_id = %s").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in labels.STORED_FIELDS))
    at = BASE + timedelta(days=30)
    as_of_times, pk_times = [], []
    with connect(params) as conn, conn.cursor() as cur:
        cur.execute("analyze human_loop.label_events")
        for _ in range(samples):
            account = f"acct-{rng.randrange(accounts):07d}"
            as_of_times.append(timed(lambda: cur.execute(as_of_sql, {"at": at, "account_id": account}).fetchall()))
            key = rng.randrange(1, max_id + 1)
            pk_times.append(timed(lambda: cur.execute(pk_sql, (key,)).fetchall()))
    return as_of_times, pk_times


def postgres_figures(admin: dict, rows: list[tuple[int, tuple]], samples: int) -> dict:
    imported, copied = scratch_database(admin), scratch_database(admin)
    try:
        copy_s = timed(lambda: raw_copy(copied, rows))
        import_s = timed(lambda: bulk_import(imported, rows))
        reimport_s = timed(lambda: bulk_import(imported, rows))
        as_of_times, pk_times = lookup_latencies(imported, max(1, len(rows) // ACCOUNTS_PER_ROW), len(rows), samples)
    finally:
        drop_database(admin, imported)
        drop_database(admin, copied)
    return {"copy_s": copy_s, "import_s": import_s, "reimport_s": reimport_s,
            "as_of_ms": statistics.median(as_of_times) * 1e3, "pk_ms": statistics.median(pk_times) * 1e3,
            "as_of_p95_ms": statistics.quantiles(as_of_times, n=20)[-1] * 1e3,
            "pk_p95_ms": statistics.quantiles(pk_times, n=20)[-1] * 1e3}


# --- Spark ---------------------------------------------------------------------------------------


def spark_figures(settings, rows: int, repeats: int = 3) -> dict:
    from pyspark.sql import functions as F

    from common.labels_pit import labels_as_of
    from common.spark import build_session

    spark = build_session(settings, "ledgerlane-labels-bench")
    accounts = max(1, rows // ACCOUNTS_PER_ROW)
    base = F.lit(BASE).cast("timestamp")
    labels_df = spark.range(1, rows + 1).select(
        F.col("id").alias("label_event_id"), F.format_string("acct-%07d", F.col("id") % accounts).alias("account_id"),
        F.lit("fraud").alias("label"), (base + F.make_interval(secs=F.col("id"))).alias("recorded_at"),
    ).cache()
    events_df = spark.range(1, rows + 1).select(
        F.format_string("ev-%09d", F.col("id")).alias("event_id"),
        F.format_string("acct-%07d", (F.col("id") * 7919) % accounts).alias("account_id"),
        (base + F.make_interval(secs=(F.col("id") * 104729) % rows)).alias("cutoff_at"),
    ).cache()
    labels_df.count(), events_df.count()

    def run(df) -> float:
        return timed(lambda: df.write.format("noop").mode("overwrite").save())

    pit = labels_as_of(events_df, labels_df)
    plain = events_df.join(labels_df, on="account_id", how="left")
    # Same output size as the PIT join, but it leaks labels learned after each event's cut-off.
    newest = labels_df.groupBy("account_id").agg(F.max_by(F.struct("label", "label_event_id", "recorded_at"), "label_event_id").alias("known"))
    latest = events_df.join(newest, on="account_id", how="left")
    for df in (pit, plain, latest):  # warm-up: JIT and shuffle code paths
        run(df)
    pit_s, plain_s, latest_s = (min(run(df) for _ in range(repeats)) for df in (pit, plain, latest))
    figures = {"pit_s": pit_s, "join_s": plain_s, "latest_s": latest_s, "join_rows": plain.count(), "pit_rows": pit.count()}
    spark.stop()
    return figures


# --- the run -------------------------------------------------------------------------------------


def ensure_postgres(home: Path) -> dict:
    from services import postgres

    postgres.start(home, lambda message: print(f"  · {message}", file=sys.stderr))
    return postgres.admin_dsn_params(home)


def report(rows: int, pg: dict | None, sp: dict | None) -> str:
    lines = [f"labels benchmark at {rows:,} label events"]
    if pg:
        lines.append(
            f"1. as-of lookup, one account : median {pg['as_of_ms']:.3f} ms (p95 {pg['as_of_p95_ms']:.3f}) vs primary key "
            f"{pg['pk_ms']:.3f} ms (p95 {pg['pk_p95_ms']:.3f})  ratio {pg['as_of_ms'] / pg['pk_ms']:.2f}x  (target <= 2x)"
        )
        lines.append(
            f"2. bulk idempotent import    : {pg['import_s']:.2f} s vs raw COPY {pg['copy_s']:.2f} s  throughput ratio "
            f"{pg['copy_s'] / pg['import_s']:.2f}  (target >= 0.3); re-import of the same rows (all unchanged) "
            f"{pg['reimport_s']:.2f} s"
        )
    if sp:
        lines.append(
            f"3. Spark point-in-time join  : {sp['pit_s']:.2f} s ({sp['pit_rows']:,} rows) vs plain equi-join "
            f"{sp['join_s']:.2f} s ({sp['join_rows']:,} rows)  ratio {sp['pit_s'] / sp['join_s']:.2f}x  (target <= 2x)"
        )
        lines.append(
            f"   for reference              : equi-join to each account's newest label (one row per event, leaks "
            f"the future) {sp['latest_s']:.2f} s  ratio {sp['pit_s'] / sp['latest_s']:.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labels_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--home", default=None, help="ledgerlane home whose PostgreSQL to use (default: a temp one)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    from common.config import load_settings

    home = Path(args.home or tempfile.mkdtemp(prefix="ledgerlane-bench-"))
    home.chmod(0o755)
    try:
        settings = load_settings("local", home=home)
        pg = None if args.skip_postgres else postgres_figures(ensure_postgres(home), feed(args.rows), args.samples)
        sp = None if args.skip_spark else spark_figures(settings, args.rows)
    finally:
        if not args.home:  # a throwaway home: stop its cluster and delete it
            cleanup(home)
    print(report(args.rows, pg, sp))
    return 0


def cleanup(home: Path) -> None:
    import shutil

    from services import postgres
    from services.base import no_progress

    postgres.stop(home, no_progress)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
