"""Certify the Delta version a run's latest build wrote: run the product's suite, record PASS or FAIL.

    spark-submit jobs/certify.py transactions_view --run-id r-20261122T000000Z-abc123
    spark-submit jobs/certify.py merchant_risk --run-id r-20261122T000000Z-abc123 --engine native
    ledgerlane job certify transactions_view --run-id r-20261122T000000Z-abc123

Reconciliation reads the inputs at exactly the versions the build receipt recorded. The verdict goes to
``meta.certifications``, the full result to ``<evidence_root>/<run_id>/certifications/<product>-v<N>.json``,
and a certify receipt to ``meta.job_receipts``. Exit code 7 when the verdict is FAIL.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession

from checks import certifications, ge_adapter, native
from checks.results import FAIL, Verdict
from common import fs
from common.jobspec import RUN_ID, Argument, Job, JobContext, Option
from common.errors import UncertifiedProductError
from common.faults import crash_if_requested
from products import NAMES
from products import product as find_product
from common.run import assert_run_id
from jobs import receipts
from jobs.batch_context import BatchContext
from jobs.build import SOURCE_SCHEMAS, Input, read_input

ENGINES = {ge_adapter.ENGINE: ge_adapter.evaluate, native.ENGINE: native.evaluate}
# Native is the default: its checks, and a rerun's certification, stay within half a build's time and
# GE's do not (docs/batch.md, "Benchmark"). Both evaluate the same suites; GE stays one flag away.
DEFAULT_ENGINE = native.ENGINE


def evidence_path(evidence_root: str, run_id: str, product: str, version: int) -> str:
    return f"{evidence_root.rstrip('/')}/{run_id}/certifications/{product}-v{version}.json"


def built_receipt(run_receipts: list[dict], product: str, run_id: str) -> dict:
    """The run's latest build of ``product``; certifying needs one that wrote a version."""
    build = receipts.latest(run_receipts, product, receipts.BUILD)
    if build is None or build["status"] != receipts.BUILT:
        found = "no build receipt" if build is None else f"build attempt {build['attempt']} {build['status']}"
        raise UncertifiedProductError(
            f"data product '{product}' of run {run_id} cannot be certified: expected a successful build "
            f"(ledgerlane job build {product} --run-id {run_id}), found {found}")
    return build


def read_pinned(spark: SparkSession, inputs: list[dict]) -> dict[str, DataFrame]:
    """The build's inputs at exactly the versions it recorded, keyed as the product's transform reads them."""
    frames = {}
    for source in inputs:
        pinned = Input(source["name"], source["location"], source["version"])
        if source["name"] in SOURCE_SCHEMAS:
            frames[source["name"]] = read_input(spark, pinned, SOURCE_SCHEMAS[source["name"]]())
        else:   # an upstream product, read at the certified version the build used
            frames[find_product(source["name"]).name] = read_input(spark, pinned, None)
    return frames


def expected_totals(spark: SparkSession, product: str, inputs: list[dict], run_id: str, as_of: datetime) -> dict:
    """The inputs' totals the product must reconcile with, read at the versions its build used."""
    return find_product(product).totals(read_pinned(spark, inputs), as_of, run_id).first().asDict()


def check_version(spark: SparkSession, build: dict, *, engine: str) -> tuple[Verdict, dict, dict]:
    """Run the suite on the built version; returns the verdict, the expected totals and the timings."""
    product, run_id, as_of = build["product"], build["run_id"], receipts.as_utc(build["cutoff"])
    output = build["outputs"][0]
    started = time.perf_counter()
    expected = expected_totals(spark, product, build["inputs"], run_id, as_of)
    reconciled = time.perf_counter()
    data = spark.read.format("delta").option("versionAsOf", output["version"]).load(output["location"])
    results = ENGINES[engine](data, find_product(product).suite(run_id, as_of, expected))
    timings = {"inputs_s": round(reconciled - started, 3), "checks_s": round(time.perf_counter() - reconciled, 3)}
    return Verdict(product, run_id, output["version"], engine, tuple(results)), expected, timings


def certify(spark: SparkSession, ctx: BatchContext, product_name: str, run_id: str, *,
            engine: str = DEFAULT_ENGINE, run_receipts: list[dict] | None = None) -> dict:
    """Certify the run's latest build of the product; records the verdict, the evidence and a receipt.

    ``run_receipts``: the run's receipts when the caller already holds them (a rerun that just built the
    product); otherwise they are read from ``meta.job_receipts``.
    """
    product, run_id = find_product(product_name), assert_run_id(run_id)
    if run_receipts is None:
        run_receipts = receipts.for_run(spark, ctx.tables_root, run_id)
    build = built_receipt(run_receipts, product.name, run_id)
    started_at = ctx.clock()
    verdict, expected, timings = check_version(spark, build, engine=engine)
    output = build["outputs"][0]
    path = evidence_path(ctx.evidence_root, run_id, product.name, verdict.version)
    evidence = {**verdict.to_dict(), "table": product.table.name, "location": output["location"],
                "cutoff": build["cutoff"], "inputs": build["inputs"], "expected": expected, "timings": timings,
                "code_version": ctx.code_version, "config_digest": ctx.config_digest, "certified_at": started_at}
    fs.write_text(spark, path, json.dumps(evidence, indent=2, sort_keys=True, default=str), overwrite=True)
    crash_if_requested(f"certify.{product.name}.before_verdict", 0)
    certifications.record(spark, ctx.tables_root, certifications.row(
        verdict, product.table.name, output["location"], build["inputs"], path, started_at))
    crash_if_requested(f"certify.{product.name}.before_receipt", 0)
    receipt = receipts.record(spark, ctx.tables_root, {
        "run_id": run_id, "product": product.name, "step": receipts.CERTIFY, "status": verdict.status,
        "attempt": receipts.next_attempt(run_receipts, product.name, receipts.CERTIFY), "cutoff": build["cutoff"],
        "inputs": build["inputs"], "outputs": [{**output, "rows": None, "files": None}], "checker": engine,
        "checker_result": verdict.status, "reasons": verdict.failures, "code_version": ctx.code_version,
        "config_digest": ctx.config_digest, "started_at": started_at, "finished_at": ctx.clock()})
    return {**receipt, "version": verdict.version, "evidence_path": path, "timings": timings}


def describe(summary: dict) -> str:
    head = (f"{summary['product']} of run {summary['run_id']}: version {summary['version']} certified "
            f"{summary['status']} by {summary['checker']} in {summary['seconds']}s (evidence {summary['evidence_path']})")
    return "\n".join([head, *[f"  failed: {reason}" for reason in summary["reasons"]]])


def exit_code(summary: dict) -> int:
    """A FAIL verdict is a finished certification, not a crash, but scripts must not read it as success."""
    return UncertifiedProductError.exit_code if summary["status"] == FAIL else 0


def _run(ctx: JobContext, args: dict) -> dict:
    return certify(ctx.spark, BatchContext.from_settings(ctx.settings), args["product"], args["run_id"],
                   engine=args["engine"])


ENGINE_OPTION = Option("--engine", "Great Expectations suite, or the same checks as one native Spark aggregate.",
                       choices=tuple(sorted(ENGINES)), default=DEFAULT_ENGINE)

JOB = Job(
    name="certify", group="job", module="jobs.certify", run=_run, describe=describe, exit_code=exit_code,
    summary="Certify the version a run's latest build wrote: PASS or FAIL (exit 7) into meta.certifications.",
    arguments=(Argument("product", "The data product to certify.", choices=NAMES),),
    options=(RUN_ID, ENGINE_OPTION),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
