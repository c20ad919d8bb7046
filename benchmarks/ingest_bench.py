"""Ingest benchmarks (not a test): every ratio measured side by side in this one run.

    .venv/bin/python -m benchmarks.ingest_bench [--events 100000] [--small 50000] [--rounds 2] [--quick]
                                                [--home PATH] [--json PATH]

1. Throughput, timed as a user waits for it (the whole call: for governed ingest the topic snapshot,
   run basis, epoch and checkpoint identity checks, the query and the caught-up proof), with every
   path's row counts checked, on one batch of ``--events`` valid events (plus the simulator's retries,
   conflicts and bad records) and of ``--small`` for the marginal cost per record:
   - governed ÷ a raw Kafka -> Delta append (the floor; no target);
   - governed ÷ what a careful engineer builds without ledgerlane (target >= 0.8), and how many
     defective records that pipeline lets through;
   - where the governed path spends its time, per stage of the batch function.
2. History: per-event cost of the governed stream with 10x admitted history on the batch's own event
   dates ÷ with 1x (target <= 1.5). The benchmark checks that the history slice the batch looks up is
   non-empty and grows 10x.
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
from datetime import datetime, timezone
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.harness import Section, alternating, jvm_cpu_seconds, ratio, timed
from common import catalog, delta, events
from common.config import Settings, load_settings
from common.endpoints import kafka_bootstrap
from services import manager
from common.spark import build_session, cached
from simulator.producer import SimulationSummary, simulate
from streaming import ingest as lane
from streaming.validate import Validator, event_dates

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAYS = 3
RATES = {"duplicate_rate": 0.01, "conflict_rate": 0.002, "bad_rate": 0.02}   # the simulator's defaults
THROUGHPUT_TARGET, HISTORY_TARGET = 0.8, 1.5
PATHS = ("raw", "careful", "governed")


@dataclass
class Topic:
    name: str
    sent: SimulationSummary

    @property
    def records(self) -> int:
        return self.sent.records


@dataclass
class Run:
    seconds: float
    rows: int
    stages: dict[str, float] = field(default_factory=dict)       # wall seconds per stage (governed)
    query_seconds: float | None = None
    cpu: float | None = None                                     # driver JVM CPU seconds of the whole run
    stage_cpu: dict[str, float] = field(default_factory=dict)    # driver JVM CPU seconds per stage


# ---- the three paths -------------------------------------------------------------------------------

def careful_pipeline(source: DataFrame, keep: tuple = ("partition", "offset"), lateness: str = "1 day",
                     streaming: bool = False) -> DataFrame:
    """What a careful engineer builds without ledgerlane: the JSON parsed into the event contract's typed
    columns, required fields non-null, the event time by ``try_cast`` (a plain cast fails the whole
    query on the first bad timestamp), duplicates dropped on the event id within a watermark. The source
    columns in ``keep`` stay: the position, so the benchmark can tell which records it admitted.

    ``streaming``: for a stream of many batches, which a one-batch run never meets: an event time in the
    future (the simulator sends some, 9999-12-31) is dropped before the watermark, which would otherwise
    jump to it and drop every later event as late; and ``lateness`` must span the traffic's event times."""
    parsed = source.select(*keep, F.from_json(F.col("value").cast("string"), events.wire_schema()).alias("e"))
    kept = [c for c in parsed.columns if c != "e"]
    typed = parsed.select(*kept, "e.*").withColumn(
        "event_time", F.col("event_time").try_cast("timestamp"))
    complete = typed.where(reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in events.REQUIRED_FIELDS]))
    if streaming:
        complete = complete.where(F.col("event_time") <= F.current_timestamp() + F.expr("INTERVAL 1 DAY"))
    return complete.withWatermark("event_time", lateness).dropDuplicatesWithinWatermark(["event_id"])


def streamed_append(frame: DataFrame, root: Path, name: str) -> float:
    """One Structured Streaming query with its own checkpoint, appending to one Delta table, timed from
    start to its end (availableNow)."""
    def run() -> None:
        query = (frame.writeStream.format("delta").option("checkpointLocation", str(root / f"{name}-checkpoint"))
                 .trigger(availableNow=True).start(str(root / name)))
        query.awaitTermination()
    return timed(run)[0]


def raw_run(spark: SparkSession, settings: Settings, root: Path, topic: Topic) -> Run:
    source = lane.kafka_source(spark, settings, kafka_bootstrap(settings))
    cpu, seconds = cpu_of(spark, lambda: streamed_append(source, root, "raw"))
    rows = spark.read.format("delta").load(str(root / "raw")).count()
    assert rows == topic.records, f"raw append wrote {rows} rows of {topic.records}"
    return Run(seconds, rows, cpu=cpu)


def careful_run(spark: SparkSession, settings: Settings, root: Path, topic: Topic) -> Run:
    source = lane.kafka_source(spark, settings, kafka_bootstrap(settings))
    cpu, seconds = cpu_of(spark, lambda: streamed_append(careful_pipeline(source), root, "careful"))
    rows = spark.read.format("delta").load(str(root / "careful")).count()
    assert 0 < rows <= topic.records, f"careful pipeline wrote {rows} rows of {topic.records}"
    return Run(seconds, rows, cpu=cpu)


def governed_run(spark: SparkSession, settings: Settings, root: Path, topic: Topic) -> Run:
    local = scoped(settings, root, topic)
    with stage_clock(spark) as (stages, stage_cpu):
        cpu, (seconds, summary) = cpu_of(spark, lambda: timed(lambda: lane.ingest(spark, local, f"r-bench-{root.name}")))
    assert_governed_counts(summary, topic)
    return Run(seconds, summary["admitted"], dict(stages), summary["seconds"], cpu, dict(stage_cpu))


def cpu_of(spark: SparkSession, action):
    before = jvm_cpu_seconds(spark)
    result = action()
    return jvm_cpu_seconds(spark) - before, result


def assert_governed_counts(summary: dict, topic: Topic) -> None:
    expected = topic.sent.by_expected
    assert summary["caught_up"] and summary["received"] == topic.records, summary
    assert summary["admitted"] == expected["admitted"] and summary["duplicates"] == expected["duplicate"], summary
    assert summary["received"] == summary["admitted"] + summary["duplicates"] + summary["quarantined"], summary


RUNNERS = {"raw": raw_run, "careful": careful_run, "governed": governed_run}


# ---- where the governed path spends its time -------------------------------------------------------

@contextmanager
def stage_clock(spark: SparkSession) -> Iterator[tuple[dict[str, float], dict[str, float]]]:
    """Wall and driver-JVM CPU seconds per stage of the ingest batch function, for the runs inside the block.

    The batch function's own methods and the Delta write helper are wrapped for the block only; the
    work they do is unchanged.
    """
    stages: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)

    def clocked(name: str, action):
        before = jvm_cpu_seconds(spark)
        seconds, result = timed(action)
        stages[name] += seconds
        cpu[name] += jvm_cpu_seconds(spark) - before
        return result

    inside = []   # non-empty while the batch function runs

    class TimedWriter(lane.IngestBatchWriter):
        def __call__(self, batch, batch_id):
            inside.append(batch_id)
            try:
                clocked("batch function", lambda: super(TimedWriter, self).__call__(batch, batch_id))
            finally:
                inside.pop()

        def _history(self, validated, batch_id):
            return clocked("kafka read + validate + cache + dates", lambda: super(TimedWriter, self)._history(
                validated, batch_id))

        def _write(self, classified, batch_id):
            clocked("classify + counts + writes", lambda: super(TimedWriter, self)._write(classified, batch_id))

    append = delta.append

    def timed_append(df, path, table, run_id, **kwargs):
        # A new run's basis is written while the query runs (beside it, on its own thread).
        where = "alongside the query: write" if table == "meta.run_basis" else \
            "write" if inside else "outside the query: write"
        clocked(f"{where} {table}", lambda: append(df, path, table, run_id, **kwargs))

    side_by_side = lane.concurrently

    def timed_side_by_side(spark_, *actions):   # the batch's outcome writes (outside it: not reported)
        return clocked("writes side by side", lambda: side_by_side(spark_, *actions)) if inside else \
            side_by_side(spark_, *actions)

    lane.IngestBatchWriter, delta.append, lane.concurrently = TimedWriter, timed_append, timed_side_by_side
    try:
        yield stages, cpu
    finally:
        lane.IngestBatchWriter, delta.append, lane.concurrently = TimedWriter.__base__, append, side_by_side


def stage_table(run: Run, cpu: bool = False) -> list[tuple[str, float]]:
    """Seconds per stage of a governed run (wall, or driver-JVM CPU with ``cpu``)."""
    s = run.stage_cpu if cpu else run.stages
    total, query = (run.cpu, None) if cpu else (run.seconds, run.query_seconds)
    if cpu:   # the query's own CPU is not measured apart from the batch function
        return [("everything but the batch function", total - s["batch function"]), *_inside(s)]
    outside_writes = {k: v for k, v in s.items() if k.startswith("outside the query: write ")}
    alongside = {f"{k} (overlapping the query)": v for k, v in s.items() if k.startswith("alongside the query: ")}
    return [
        ("outside the query: topic snapshot, reads and checks, epoch, identity, caught-up proof (all)",
         total - query),
        *sorted(outside_writes.items()),
        ("query start, offsets, planning, commit, stop", query - s["batch function"]),
        *sorted(alongside.items()),
        *_inside(s),
    ]


def _inside(s: dict[str, float]) -> list[tuple[str, float]]:
    """The outcome tables are written side by side (each write's own time overlaps the others'); the
    receipt after them."""
    writes = {k: v for k, v in s.items() if k.startswith("write ")}
    receipt = writes.get("write meta.ingest_receipts", 0.0)
    return [
        ("batch claim and plan building (the validate and classify selects, before any job)",
         s["batch function"] - s["kafka read + validate + cache + dates"] - s["classify + counts + writes"]),
        ("kafka read + validate + cache + dates", s["kafka read + validate + cache + dates"]),
        ("classify (dedup vs batch and history) + cache + receipt counts",
         s["classify + counts + writes"] - s["writes side by side"] - receipt),
        ("write the outcome tables side by side (wall)", s["writes side by side"]),
        *sorted((f"{k} (overlapping)" if k != "write meta.ingest_receipts" else k, v) for k, v in writes.items()),
    ]


# ---- history ---------------------------------------------------------------------------------------

def seed_history(spark: SparkSession, settings: Settings, rows: int, days: list) -> None:
    """Synthetic admitted events spread evenly over ``days``: the batch's own event dates."""
    path = catalog.location(settings.tables_root, "bronze.admitted_events")
    first = int(datetime.combine(days[0], datetime.min.time(), timezone.utc).timestamp())
    offset = (F.col("id") % len(days)) * 86_400 + (F.col("id") * 7919) % 86_400
    event_time = F.timestamp_seconds(F.lit(first) + offset)
    synthetic = {
        "event_id": F.concat(F.lit("hist-"), F.col("id").cast("string")), "account_id": F.lit("acc-history"),
        "card_id": F.lit("card-history"), "merchant_id": F.lit("mer-history"), "merchant_name": F.lit("History"),
        "mcc": F.lit("5411"), "amount_minor": F.col("id") + 1, "currency": F.lit("EUR"), "event_time": event_time,
        "channel": F.lit("ecommerce"), "country": F.lit("DE"), "card_present": F.lit(False),
        "schema_version": F.lit(1).cast("long"), "device_id": F.lit(None).cast("string"),
        "ip_address": F.lit(None).cast("string"), "event_date": F.to_date(event_time), "topic": F.lit("history"),
        "partition": F.lit(0), "offset": F.col("id"), "kafka_timestamp": event_time,
        "payload_sha256": F.sha2(F.col("id").cast("string"), 256), "run_id": F.lit("r-history"),
        "app_id": F.lit("history"), "batch_id": F.lit(-1).cast("long"), "admitted_at": F.current_timestamp(),
    }
    frame = spark.range(rows).select(*[col.alias(name) for name, col in synthetic.items()])
    delta.append(frame.select(*admitted_columns(spark)), path, "bronze.admitted_events", "r-history")


def admitted_columns(spark: SparkSession) -> list[str]:
    """Column order of the admitted table, taken from the lane's own projection of an empty batch."""
    from streaming.dedup import classify

    empty = spark.createDataFrame([], "topic string, partition int, offset long, timestamp timestamp, "
                                      "key binary, value binary")
    classified = classify(Validator()(empty), spark.createDataFrame([], "event_id string, payload_sha256 string"))
    return lane.admitted_rows(lane.with_lineage(classified, "r", "a", 0, datetime.now(timezone.utc))).columns


def batch_dates(spark: SparkSession, settings: Settings, topic: Topic) -> list:
    """The event dates of the batch, found as the lane finds them (validated rows, valid events only)."""
    raw = (spark.read.format("kafka").option("kafka.bootstrap.servers", kafka_bootstrap(settings))
           .option("subscribe", topic.name).option("startingOffsets", "earliest").load())
    with cached(Validator()(raw)) as validated:   # as the lane does: the dates come from the cache
        return sorted(r.d for r in event_dates(validated).collect())


def history_slice_rows(spark: SparkSession, settings: Settings, dates: list) -> int:
    """Rows of the admitted history the batch looks up, by the lane's own slice."""
    path = catalog.location(settings.tables_root, "bronze.admitted_events")
    admitted = spark.read.format("delta").load(path)
    return lane.history_slice(admitted, lane.history_window(dates), "bench", 0).count()


def history_cost(spark: SparkSession, settings: Settings, root: Path, topic: Topic, rows: int,
                 dates: list) -> tuple[float, int]:
    """Per-event seconds of the governed stream (query time) over ``rows`` of history, and the slice size."""
    local = scoped(settings, root, topic)
    seed_history(spark, local, rows, dates)
    looked_up = history_slice_rows(spark, local, dates)
    summary = lane.ingest(spark, local, f"r-bench-{root.name}")
    assert_governed_counts(summary, topic)
    return summary["seconds"] / summary["received"], looked_up


# ---- the run ---------------------------------------------------------------------------------------

def scoped(settings: Settings, root: Path, topic: Topic) -> Settings:
    """Settings with their own tables and checkpoints, reading ``topic`` in one batch."""
    storage = settings.storage.model_copy(update={"tables_root": str(root / "tables"),
                                                  "checkpoints_root": str(root / "checkpoints"),
                                                  "evidence_root": str(root / "evidence")})
    kafka = settings.kafka.model_copy(update={"topic": topic.name, "consumer_group": f"bench-{root.name}",
                                              "max_offsets_per_trigger": topic.records + 1})
    return settings.model_copy(update={"storage": storage, "kafka": kafka})


def make_topic(settings: Settings, events_count: int, label: str) -> Topic:
    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic": name})})
    sent = simulate(local, events=events_count, seed=21, partitions=3, start=START, days=DAYS, **RATES)
    return Topic(name, sent)


def throughput(spark, settings, root: Path, topics: dict[str, Topic], rounds: int) -> dict[tuple[str, str], list[Run]]:
    runs: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for r, order in enumerate(alternating(list(PATHS), rounds)):
        for size, topic in topics.items():
            for path in order:
                local = scoped(settings, root / f"{path}-{size}-{r}", topic)
                runs[(size, path)].append(RUNNERS[path](spark, local, root / f"{path}-{size}-{r}", topic))
    return runs


def defects_admitted(spark: SparkSession, root: Path, governed_root: Path) -> tuple[int, int]:
    """Records the careful pipeline admitted that governed ingest did not (defects let through), and
    valid events it lost."""
    careful = spark.read.format("delta").load(str(root / "careful")).select("partition", "offset")
    admitted = spark.read.format("delta").load(
        catalog.location(str(governed_root / "tables"), "bronze.admitted_events")).select("partition", "offset")
    let_through = careful.join(admitted, on=["partition", "offset"], how="left_anti").count()
    lost = admitted.join(careful, on=["partition", "offset"], how="left_anti").count()
    return let_through, lost


def report_throughput(section: Section, spark, root: Path, topics: dict[str, Topic], runs) -> None:
    best = {key: min(rs, key=lambda run: run.seconds) for key, rs in runs.items()}
    rounds = len(runs[("big", "raw")])
    for size, topic in topics.items():
        raw, careful, governed = (best[(size, p)] for p in PATHS)
        section.add(f"{topic.records:,} records: raw append / careful / governed, s (driver CPU s), best of {rounds}",
                    " / ".join(f"{r.seconds:.1f} ({r.cpu:.1f})" for r in (raw, careful, governed)))
        section.add(f"{topic.records:,} records: governed ÷ raw append (throughput)",
                    f"{ratio(raw.seconds, governed.seconds):.3f}", target="floor, no target")
        met = ratio(careful.seconds, governed.seconds) >= THROUGHPUT_TARGET
        section.add(f"{topic.records:,} records: governed ÷ careful pipeline (throughput)",
                    f"{ratio(careful.seconds, governed.seconds):.3f} (by CPU {ratio(careful.cpu, governed.cpu):.3f})",
                    target=f">= {THROUGHPUT_TARGET}", met=met)
    extra = topics["big"].records - topics["small"].records
    for path in PATHS:
        wall = (best[("big", path)].seconds - best[("small", path)].seconds) / extra * 1e6
        cpu = (best[("big", path)].cpu - best[("small", path)].cpu) / extra * 1e6
        section.add(f"marginal cost per record, {path}", f"{wall:.1f} µs wall, {cpu:.1f} µs driver CPU")
    report_defects(section, spark, root, topics["big"], runs, best)
    report_stages(section, topics["big"], best[("big", "governed")], best[("big", "careful")])


def report_defects(section: Section, spark, root: Path, big: Topic, runs, best) -> None:
    careful_root = root / f"careful-big-{runs_index(runs, 'big', 'careful', best)}"
    governed_root = root / f"governed-big-{runs_index(runs, 'big', 'governed', best)}"
    let_through, lost = defects_admitted(spark, careful_root, governed_root)
    section.add("careful pipeline: defective records admitted",
                f"{let_through:,} of {big.records:,} records (it wrote {best[('big', 'careful')].rows:,} rows; "
                f"governed admitted {best[('big', 'governed')].rows:,}; the topic holds "
                f"{big.records - big.sent.by_expected['admitted']:,} defective or duplicate records)")
    section.add("careful pipeline: valid events it lost", f"{lost:,}")


def report_stages(section: Section, big: Topic, governed: Run, careful: Run) -> None:
    cpu = dict(governed_cpu for governed_cpu in stage_table(governed, cpu=True))
    for stage, seconds in stage_table(governed):
        spent = f"{seconds:.2f} s" + (f" ({cpu[stage]:.2f} s CPU)" if stage in cpu else "")
        section.add(f"governed {big.records:,} records, {stage}", spent)
    work = governed.stages["kafka read + validate + cache + dates"] + dict(stage_table(governed))[
        "classify (dedup vs batch and history) + cache + receipt counts"]
    floor = governed.seconds - work
    section.add("floor: governed time if reading, validating and classifying the batch cost nothing",
                f"{floor:.1f} s, so governed ÷ careful <= {ratio(careful.seconds, floor):.2f} at best")


def runs_index(runs, size: str, path: str, best) -> int:
    return runs[(size, path)].index(best[(size, path)])


def report_history(section: Section, spark, settings, root: Path, topic: Topic, rows: int, rounds: int) -> None:
    dates = batch_dates(spark, settings, topic)
    costs: dict[int, list[float]] = defaultdict(list)
    slices: dict[int, int] = {}
    for r, order in enumerate(alternating([1, 10], rounds)):
        for factor in order:
            per_event, slices[factor] = history_cost(spark, settings, root / f"h{factor}x-{r}", topic,
                                                     rows * factor, dates)
            costs[factor].append(per_event)
    assert slices[1] > 0 and slices[10] >= 9.5 * slices[1], f"history slice not read as intended: {slices}"
    one, ten = min(costs[1]), min(costs[10])
    section.add(f"history slice looked up by the batch ({len(dates)} event dates ±1 day)",
                f"{slices[1]:,} rows at 1x, {slices[10]:,} at 10x ({slices[10] / slices[1]:.1f}x)")
    section.add(f"per-event cost, {topic.records:,}-record batch, 1x / 10x history (query time)",
                f"{one * 1e6:.1f} / {ten * 1e6:.1f} µs")
    section.add("per-event cost with 10x history ÷ 1x", f"{ten / one:.3f}", target=f"<= {HISTORY_TARGET}",
                met=ten / one <= HISTORY_TARGET)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ingest_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="valid events in the big batch")
    parser.add_argument("--small", type=int, default=50_000, help="valid events in the small batch")
    parser.add_argument("--history", type=int, default=None, help="1x history rows (default: --small)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke size: 10,000 and 5,000 events, one round")
    parser.add_argument("--home", default=os.environ.get("LEDGERLANE_HOME"), help="ledgerlane home with services")
    parser.add_argument("--json", default=None, help="also write the section as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.small, args.rounds = 10_000, 5_000, 1
    started = time.perf_counter()
    section = Section("Ingest", f"One batch per run of {args.events:,} and {args.small:,} valid events (+1% retries, "
                      "0.2% conflicts, 2% bad records), 3 partitions; paths alternate order each round; best of "
                      f"{args.rounds} rounds after one warm-up round.")
    settings = load_settings("local", home=args.home)
    manager.up(settings.home, settings.cache)
    spark = build_session(settings, "ledgerlane-bench-ingest")
    root = Path(tempfile.mkdtemp(prefix="ledgerlane-bench-ingest-"))
    try:
        topics = {"small": make_topic(settings, args.small, "small"), "big": make_topic(settings, args.events, "big")}
        throughput(spark, settings, root / "warm-up", {"small": topics["small"]}, 1)
        runs = throughput(spark, settings, root, topics, args.rounds)
        report_throughput(section, spark, root, topics, runs)
        report_history(section, spark, settings, root, topics["small"], args.history or args.small, args.rounds)
    finally:
        spark.stop()
        shutil.rmtree(root, ignore_errors=True)
    return section.finish(started, args.json)


if __name__ == "__main__":
    sys.exit(main())
