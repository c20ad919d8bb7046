"""Human-loop benchmarks at 1M label events (not a test): each ratio is measured side by side in one run.

    .venv/bin/python -m benchmarks.labels_bench [--rows 1000000] [--home PATH] [--skip-spark] [--quick]

1. single-account "labels as of T" vs a primary-key lookup, median latency  (target <= 2x)
2. bulk idempotent import of a JSONL chargeback feed vs raw COPY of the same feed into an identical table,
   both timed from the file (the feed is parsed on both sides), after one warm-up of each, in alternating
   order  (target >= 0.3 throughput)
3. Spark point-in-time join (``labels_as_of``) vs an equi-join with the same output, one row per event
   (each account's newest label, which leaks labels learned after the cut-off)  (target <= 2x)

Uses (and starts, if needed) the local PostgreSQL of ``--home``; scratch databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from psycopg import sql

from benchmarks.harness import Section, alternating, drop_database, scratch_database
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


def migrated_database(admin: dict) -> dict:
    params = scratch_database(admin)
    migrate.migrate(params)
    return params


def write_feed(path: Path, rows: list[tuple[int, tuple]]) -> Path:
    """The rows as the JSONL chargeback feed a user would import (one object per line)."""
    with path.open("w", encoding="utf-8") as out:
        for _, values in rows:
            record = dict(zip(labels.CLIENT_FIELDS, values))
            record["observed_at"] = record["observed_at"].isoformat()
            out.write(json.dumps({k: v for k, v in record.items() if v is not None}) + "\n")
    return path


def copy_feed(params: dict, feed_path: Path) -> None:
    """What a user would build instead: parse each JSON line and COPY it straight into label_events (same
    constraints and triggers); no staging, no idempotency, no conflict check. The speed limit for an import."""
    with connect(params) as conn, conn.cursor() as cur, feed_path.open(encoding="utf-8") as feed_file:
        with cur.copy(RAW_COPY) as copy:
            for text in feed_file:
                record = json.loads(text)
                copy.write_row(tuple(record.get(name, label_import.DEFAULTS.get(name)) for name in labels.CLIENT_FIELDS))


def import_feed(params: dict, feed_path: Path) -> dict:
    """``ledgerlane labels import``: read, check and import the feed, all or nothing, idempotent."""
    with connect(params) as conn:
        return label_import.import_labels(conn, label_import.read_feed(feed_path))


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


def postgres_figures(admin: dict, rows: list[tuple[int, tuple]], samples: int, folder: Path) -> dict:
    feed_path = write_feed(folder / "chargebacks.jsonl", rows)
    warm = write_feed(folder / "warm-up.jsonl", rows[: max(1, len(rows) // 20)])
    times: dict[str, list[float]] = {"copy": [], "import": []}
    for round_number, order in enumerate(alternating(["copy", "import"], 3)):   # round 0 warms up
        for side in order:
            params = migrated_database(admin)
            try:
                action = copy_feed if side == "copy" else import_feed
                seconds = timed(lambda: action(params, warm if round_number == 0 else feed_path))
                if round_number:
                    times[side].append(seconds)
            finally:
                drop_database(admin, params)
    imported = migrated_database(admin)
    try:
        import_feed(imported, feed_path)
        reimport_s = timed(lambda: import_feed(imported, feed_path))
        as_of_times, pk_times = lookup_latencies(imported, max(1, len(rows) // ACCOUNTS_PER_ROW), len(rows), samples)
    finally:
        drop_database(admin, imported)
    return {"copy_s": min(times["copy"]), "import_s": min(times["import"]), "reimport_s": reimport_s,
            "copy_runs": times["copy"], "import_runs": times["import"],
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
    # The same output as the PIT join, one row per event, but each account's newest label: it leaks labels
    # learned after the event's cut-off. The fair baseline for the time it takes.
    newest = labels_df.groupBy("account_id").agg(
        F.max_by(F.struct("label", "label_event_id", "recorded_at"), "label_event_id").alias("known"))
    latest = events_df.join(newest, on="account_id", how="left")
    plain = events_df.join(labels_df, on="account_id", how="left")   # for reference: every label of the account
    frames = {"pit": pit, "latest": latest, "plain": plain}
    for df in frames.values():  # warm-up: JIT and shuffle code paths
        run(df)
    best = {name: float("inf") for name in frames}
    for order in alternating(list(frames), repeats):
        for name in order:
            best[name] = min(best[name], run(frames[name]))
    counts = {name: df.count() for name, df in frames.items()}
    assert counts["pit"] == counts["latest"] == rows, counts
    figures = {"pit_s": best["pit"], "latest_s": best["latest"], "join_s": best["plain"],
               "pit_rows": counts["pit"], "latest_rows": counts["latest"], "join_rows": counts["plain"]}
    spark.stop()
    return figures


# --- the run -------------------------------------------------------------------------------------


def ensure_postgres(home: Path) -> dict:
    from services import postgres

    postgres.start(home, lambda message: print(f"  · {message}", file=sys.stderr))
    return postgres.admin_dsn_params(home)


def report(section: Section, rows: int, pg: dict | None, sp: dict | None) -> Section:
    if pg:
        ratio = pg["as_of_ms"] / pg["pk_ms"]
        section.add("as-of lookup, one account: median (p95) vs primary key",
                    f"{pg['as_of_ms']:.3f} ({pg['as_of_p95_ms']:.3f}) ms vs {pg['pk_ms']:.3f} ({pg['pk_p95_ms']:.3f}) ms")
        section.add("as-of lookup ÷ primary-key lookup (median latency)", f"{ratio:.2f}x", target="<= 2x", met=ratio <= 2)
        throughput = pg["copy_s"] / pg["import_s"]
        section.add("JSONL feed: idempotent import vs raw COPY (s, best of 2, alternating)",
                    f"{pg['import_s']:.2f} vs {pg['copy_s']:.2f} (runs {fmt(pg['import_runs'])} / {fmt(pg['copy_runs'])})")
        section.add("import ÷ COPY (throughput)", f"{throughput:.2f}", target=">= 0.3", met=throughput >= 0.3)
        section.add("re-import of the same feed (all unchanged)", f"{pg['reimport_s']:.2f} s")
    if sp:
        ratio = sp["pit_s"] / sp["latest_s"]
        section.add(f"Spark PIT join vs same-size equi-join ({sp['pit_rows']:,} rows each, s)",
                    f"{sp['pit_s']:.2f} vs {sp['latest_s']:.2f}")
        section.add("PIT join ÷ same-size equi-join", f"{ratio:.2f}x", target="<= 2x", met=ratio <= 2)
        section.add(f"for reference: plain equi-join to every label ({sp['join_rows']:,} rows)",
                    f"{sp['join_s']:.2f} s; PIT ÷ it {sp['pit_s'] / sp['join_s']:.2f}x")
    return section


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labels_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--home", default=None, help="ledgerlane home whose PostgreSQL to use (default: a temp one)")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke size: 50,000 rows, 300 samples")
    parser.add_argument("--json", default=None, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.samples = 50_000, 300
    from common.config import load_settings

    started = time.perf_counter()
    section = Section("Human loop (labels)", f"{args.rows:,} label events over {max(1, args.rows // ACCOUNTS_PER_ROW):,} "
                      "accounts; PostgreSQL and Spark local.")
    home = Path(args.home or tempfile.mkdtemp(prefix="ledgerlane-bench-"))
    scratch = Path(tempfile.mkdtemp(prefix="ledgerlane-bench-feed-"))
    if not args.home:
        home.chmod(0o755)
    try:
        settings = load_settings("local", home=home)
        pg = None if args.skip_postgres else postgres_figures(ensure_postgres(home), feed(args.rows), args.samples,
                                                              scratch)
        sp = None if args.skip_spark else spark_figures(settings, args.rows)
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
        if not args.home:  # a throwaway home: stop its cluster and delete it
            cleanup(home)
    return report(section, args.rows, pg, sp).finish(started, args.json)


def cleanup(home: Path) -> None:
    import shutil

    from services import postgres
    from services.base import no_progress

    postgres.stop(home, no_progress)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
