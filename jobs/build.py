"""Build one data product of a run: pinned inputs -> pure transform -> the run's slice of the product table.

    spark-submit jobs/build.py transactions_view --run-id r-20261122T000000Z-abc123
    spark-submit jobs/build.py account_features --run-id r-20261122T000000Z-abc123 --cutoff 2026-11-22T00:00:00Z
    ledgerlane job build merchant_risk --run-id r-20261122T000000Z-abc123

Idempotent per (run, product): the write replaces the rows ``run_id = R`` (Delta ``replaceWhere``), so a
rebuild replaces the run's slice and never duplicates it. Raw inputs are read at the version pinned
when the build starts; products are read only through the certification gate. Every attempt, failed
or not, leaves a receipt in ``meta.job_receipts``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from checks import gate
from common import basis as run_basis
from common import catalog, delta, tables
from common.jobspec import RUN_ID, Argument, Job, JobContext, Option
from common.faults import crash_if_requested
from common.errors import ConfigError, IdempotencyConflict, LedgerlaneError, UncertifiedProductError
from common.events import spark_schema
from products import NAMES
from products import product as find_product
from products.model import Product
from common.run import assert_run_id
from common.spark import cached
from jobs import receipts, status
from jobs.batch_context import BatchContext

ADMITTED = "bronze.admitted_events"
LABELS = "labels.label_events"


def admitted_schema() -> StructType:
    """``bronze.admitted_events`` as ``streaming/ingest.admitted_rows`` writes it (for an empty stand-in)."""
    extra = [("event_date", DateType()), ("topic", StringType()), ("partition", IntegerType()),
             ("offset", LongType()), ("kafka_timestamp", TimestampType()), ("payload_sha256", StringType()),
             ("run_id", StringType()), ("app_id", StringType()), ("batch_id", LongType()),
             ("admitted_at", TimestampType())]
    fields = [StructField(f.name, f.dataType, True) for f in spark_schema().fields]
    return StructType(fields + [StructField(name, kind, True) for name, kind in extra])


def labels_schema() -> StructType:
    from jobs.export_labels import SCHEMA

    return SCHEMA


# Raw tables a product may read, with the schema of the empty stand-in used before they exist.
SOURCE_SCHEMAS = {ADMITTED: admitted_schema, LABELS: labels_schema}


@dataclass(frozen=True)
class Input:
    name: str
    location: str
    version: int | None     # None: the table did not exist yet, read as empty

    def to_dict(self) -> dict:
        return asdict(self)


def pinned(spark: SparkSession, tables_root: str, table: str) -> Input:
    location = catalog.location(tables_root, table)
    version = delta.latest_version(spark, location) if tables.exists(spark, location) else None
    return Input(table, location, version)


def read_input(spark: SparkSession, source: Input, schema: StructType | None) -> DataFrame:
    """The input at its pinned version; an input that did not exist yet reads as empty with ``schema``."""
    if source.version is None:
        return spark.createDataFrame([], schema)
    return spark.read.format("delta").option("versionAsOf", source.version).load(source.location)


def upstream(spark: SparkSession, tables_root: str, name: str, run_id: str,
             run_receipts: list[dict]) -> tuple[Input, DataFrame]:
    """An upstream product through the gate, refused unless this run's own build of it is PASS."""
    state = status.run_statuses(spark, tables_root, run_id, run_receipts)[name]
    if state.state != status.PASS:
        raise UncertifiedProductError(
            f"data product '{name}' of run {run_id} must be certified PASS before its dependents are built; "
            f"found {state.state} ({state.detail})")
    certified = gate.certified(spark, tables_root, find_product(name).table.name)
    if certified.version < state.version:
        raise UncertifiedProductError(
            f"data product '{name}': the gate serves version {certified.version}, older than run {run_id}'s "
            f"PASS version {state.version}; a newer FAIL or conflicting verdict hides it")
    return Input(certified.table, certified.location, certified.version), certified.frame


def read_inputs(spark: SparkSession, tables_root: str, product: Product, run_id: str,
                run_receipts: list[dict]) -> tuple[list[Input], dict[str, DataFrame]]:
    """The product's inputs: upstream products through the gate, raw sources at a version pinned now."""
    inputs, frames = [], {}
    for name in product.upstream:
        source, frames[name] = upstream(spark, tables_root, name, run_id, run_receipts)
        inputs.append(source)
    for table in product.sources:
        source = pinned(spark, tables_root, table)
        frames[table] = read_input(spark, source, SOURCE_SCHEMAS[table]())
        inputs.append(source)
    return inputs, frames


def write_product(spark: SparkSession, tables_root: str, product: Product, frame: DataFrame, run_id: str) -> dict:
    """Replace the run's slice; the commit is found again by its run id to report version, rows and files."""
    location = catalog.location(tables_root, product.table.name)
    # Cached: the emptiness check and the write would otherwise each compute the transform.
    with cached(frame) as frame:
        if frame.isEmpty():
            raise LedgerlaneError(f"{product.name}: run {run_id} produced no rows (did the run admit any events?); "
                                  f"nothing was written to {location}")
        before = delta.latest_version(spark, location) if tables.exists(spark, location) else -1
        delta.append(frame, location, product.table.name, run_id, mode="overwrite",
                     replace_where=f"run_id = '{assert_run_id(run_id)}'")
    commit = _commit_of(spark, location, run_id, after=before)
    metrics = commit["operationMetrics"] or {}
    return {"name": product.table.name, "location": location, "version": commit["version"],
            "rows": int(metrics.get("numOutputRows", 0)), "files": int(metrics.get("numFiles", 0))}


def _commit_of(spark: SparkSession, location: str, run_id: str, *, after: int):
    commits = (delta.history(spark, location).where(F.col("version") > after)
               .select("version", "userMetadata", "operationMetrics").orderBy(F.col("version").desc()).collect())
    for commit in commits:
        if json.loads(commit["userMetadata"] or "{}").get("run_id") == run_id:
            return commit
    raise LedgerlaneError(f"{location}: expected a commit stamped with run {run_id} after version {after}, found none")


def resolve_cutoff(spark: SparkSession, ctx: BatchContext, run_id: str, explicit: datetime | None,
                   run_receipts: list[dict]) -> datetime:
    """One cut-off per run: the one it already used, else ``--cutoff``, else its basis time, else now."""
    recorded = receipts.run_cutoff(run_receipts)
    if explicit is not None and recorded is not None and receipts.as_utc(explicit) != recorded:
        raise IdempotencyConflict(
            f"run {run_id} was built with cut-off {recorded.isoformat()}; --cutoff {explicit.isoformat()} differs "
            "(a run has one cut-off: use a new run id for another)")
    if explicit is not None or recorded is not None:
        return receipts.as_utc(explicit or recorded)
    basis = run_basis.read_basis(spark, catalog.location(ctx.tables_root, "meta.run_basis"), run_id)
    return receipts.as_utc(basis["captured_at"]) if basis else ctx.clock()


def build(spark: SparkSession, ctx: BatchContext, product_name: str, run_id: str, *,
          cutoff: datetime | None = None, run_receipts: list[dict] | None = None) -> dict:
    """Build one product of a run and leave its receipt; a failure is recorded (ERROR, why) and re-raised.

    ``run_receipts``: the run's receipts when the caller already holds them; otherwise they are read.
    """
    product, run_id = find_product(product_name), assert_run_id(run_id)
    if run_receipts is None:
        run_receipts = receipts.for_run(spark, ctx.tables_root, run_id)
    as_of = resolve_cutoff(spark, ctx, run_id, cutoff, run_receipts)
    receipt = {"run_id": run_id, "product": product.name, "step": receipts.BUILD, "cutoff": as_of,
               "attempt": receipts.next_attempt(run_receipts, product.name, receipts.BUILD),
               "code_version": ctx.code_version, "config_digest": ctx.config_digest, "started_at": ctx.clock(),
               "inputs": [], "outputs": [], "checker": None, "checker_result": None, "reasons": []}
    try:
        inputs, frames = read_inputs(spark, ctx.tables_root, product, run_id, run_receipts)
        receipt["inputs"] = [i.to_dict() for i in inputs]
        frame = product.build(frames, as_of, run_id)
        receipt["outputs"] = [write_product(spark, ctx.tables_root, product, frame, run_id)]
    except Exception as exc:  # any failure leaves its receipt; the error itself still propagates
        receipts.record(spark, ctx.tables_root, {**receipt, "status": receipts.ERROR, "reasons": [str(exc)],
                                                 "finished_at": ctx.clock()})
        raise
    crash_if_requested(f"build.{product.name}.before_receipt", 0)
    return receipts.record(spark, ctx.tables_root, {**receipt, "status": receipts.BUILT, "finished_at": ctx.clock()})


def describe(receipt: dict) -> str:
    out = receipt["outputs"][0]
    sources = ", ".join(f"{i['name']}@v{i['version']}" for i in receipt["inputs"])
    return (f"built {receipt['product']} of run {receipt['run_id']} (attempt {receipt['attempt']}, cut-off "
            f"{receipt['cutoff'].isoformat()}): {out['rows']} rows in {out['files']} files -> {out['name']} "
            f"version {out['version']} from {sources} in {receipt['seconds']}s")


def parse_cutoff(text: str) -> datetime:
    """ISO-8601 with a UTC offset (``Z`` allowed); a naive time is ambiguous and refused."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"expected an ISO-8601 time such as 2026-11-22T00:00:00Z, found {text!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(f"cut-off {text!r} needs a UTC offset, e.g. 2026-11-22T00:00:00Z")
    return moment


def _run(ctx: JobContext, args: dict) -> dict:
    return build(ctx.spark, BatchContext.from_settings(ctx.settings), args["product"], args["run_id"],
                 cutoff=args["cutoff"])


JOB = Job(
    name="build", group="job", module="jobs.build", run=_run, describe=describe,
    summary="Build one data product of a run (replaces that run's slice; never duplicates it).",
    arguments=(Argument("product", "The data product to build.", choices=NAMES),),
    options=(RUN_ID, Option("--cutoff", "ISO-8601 cut-off with offset (default: the run's, else its basis time).",
                            parse=parse_cutoff, metavar="TIME")),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
