"""A whole run, step by step, in one process: what ``ledgerlane run`` and the demo execute.

    ledgerlane run --run-id r-20261122-1
    spark-submit jobs/submit.py run --run-id r-20261122-1

migrate -> ingest until caught up with the basis -> export labels -> build and certify every product
that lacks a PASS -> decide until caught up -> open cases until caught up -> close. Run again with the
same id, it resumes: a run whose ingest already proved catch-up is not ingested again (new traffic
belongs to the next run), products with a PASS are not rebuilt, the streams continue from their
checkpoints, and a run closed PASS is verified, not closed again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import basis as run_basis
from common import catalog, tables
from common.config import Settings
from common.faults import crash_if_requested
from common.endpoints import postgres_params
from common.jobspec import RUN_ID, Job, JobContext
from common.run import assert_run_id
from human_loop import migrate
from jobs import closure, export_labels, rerun
from jobs.batch_context import BatchContext
from streaming import cases, decide, ingest

STEPS = ("migrate", "ingest", "export-labels", "products", "decide", "cases", "close")


def proved_caught_up(spark: SparkSession, settings: Settings, run_id: str) -> bool:
    proofs = tables.read_or_empty(spark, catalog.location(settings.tables_root, "meta.caught_up"),
                                  run_basis.CAUGHT_UP_SCHEMA)
    return proofs.where((F.col("run_id") == run_id) & F.col("caught_up")).limit(1).count() == 1


def admitted_by(spark: SparkSession, settings: Settings, run_id: str) -> int:
    receipts = tables.read_or_empty(spark, catalog.location(settings.tables_root, "meta.ingest_receipts"),
                                    ingest.RECEIPT_SCHEMA)
    return receipts.where(F.col("run_id") == run_id).agg(F.coalesce(F.sum("admitted"), F.lit(0))).first()[0]


def step_functions(spark: SparkSession, settings: Settings, run_id: str,
                   progress: Callable[[str], None]) -> dict[str, Callable[[], dict]]:
    def ingest_step() -> dict:
        if proved_caught_up(spark, settings, run_id):
            return {"skipped": "caught up with its basis already"}
        return ingest.ingest(spark, settings, run_id, progress=progress)

    def unless_nothing_admitted(work: Callable[[], dict], what: str) -> Callable[[], dict]:
        """A run that admitted nothing new (all duplicates, all quarantined) has no slice to build or decide."""
        def step() -> dict:
            if not admitted_by(spark, settings, run_id):
                return {"skipped": f"the run admitted no event: no {what}", "ok": True}
            return work()
        return step

    return {
        "migrate": lambda: migrate.migrate(postgres_params(settings), run_id=run_id),
        "ingest": ingest_step,
        "export-labels": lambda: export_labels.export(spark, settings, run_id),
        "products": unless_nothing_admitted(
            lambda: rerun.rerun(spark, BatchContext.from_settings(settings), run_id), "product slice"),
        "decide": unless_nothing_admitted(lambda: decide.decide(spark, settings, run_id, progress=progress),
                                          "decision"),
        "cases": unless_nothing_admitted(lambda: cases.open_cases(spark, settings, run_id, progress=progress),
                                         "case"),
        "close": lambda: closure.close(spark, settings, run_id, progress=progress),
    }


def run(spark: SparkSession, settings: Settings, run_id: str, *, progress: Callable[[str], None] = lambda _: None,
        before_step: Callable[[str], None] = lambda _: None) -> dict:
    """Every step in order; a step that raises stops the run (the next ``run`` resumes from there).

    A rerun of products that is not all PASS stops before decide: no decision on uncertified features.
    """
    run_id = assert_run_id(run_id)
    began, steps = time.monotonic(), {}
    for name, work in step_functions(spark, settings, run_id, progress).items():
        crash_if_requested(f"run.before_{name}", 0)
        before_step(name)
        progress(f"step {name}")
        started = time.monotonic()
        steps[name] = {**work(), "step_seconds": round(time.monotonic() - started, 2)}
        if name == "products" and not steps[name]["ok"]:
            break
    verdict = steps.get("close", {}).get("verdict", "OPEN")
    return {"run_id": run_id, "verdict": verdict, "steps": steps, "seconds": round(time.monotonic() - began, 1)}


def describe(summary: dict) -> str:
    lines = [f"run {summary['run_id']}: {summary['verdict']} in {summary['seconds']} s"]
    for name, result in summary["steps"].items():
        lines.append(f"  {name:<14} {result.get('skipped') or ''}{result['step_seconds']:>8.1f} s")
    close = summary["steps"].get("close")
    if close:
        lines += [f"  - {reason}" for reason in close.get("reasons", [])]
        lines.append(f"  report {close['report']}")
    elif "products" in summary["steps"] and not summary["steps"]["products"]["ok"]:
        lines.append("  stopped: a data product is not certified PASS (see `ledgerlane rerun --dry-run`)")
    return "\n".join(lines)


def exit_code(summary: dict) -> int:
    from common.errors import ClosureFailed, UncertifiedProductError

    if summary["verdict"] == "PASS":
        return 0
    return ClosureFailed.exit_code if summary["verdict"] == "FAIL" else UncertifiedProductError.exit_code


def _run(ctx: JobContext, args: dict) -> dict:
    return run(ctx.spark, ctx.settings, args["run_id"], progress=ctx.progress)


JOB = Job(
    name="run", group="", module="jobs.run", run=_run, describe=describe, exit_code=exit_code,
    summary="A whole run: migrate, ingest to the basis, export labels, build and certify products, decide, "
            "open cases, close (again with the same id: resumes what is missing).",
    options=(RUN_ID,),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
