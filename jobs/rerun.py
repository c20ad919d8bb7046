"""Targeted rerun: rebuild and re-certify exactly the products of a run that lack a PASS, and their dependents.

    spark-submit jobs/rerun.py --run-id r-20261122T000000Z-abc123 [--product merchant_risk] [--dry-run] [--json]
    ledgerlane rerun --run-id r-20261122T000000Z-abc123 [--product P] [--dry-run] [--json]

Products already certified PASS (and not downstream of one being rebuilt) are not touched: no new Delta
version, no new receipt. ``--product P`` limits the rerun to P's lineage (its ancestors and dependents).
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession

from checks.results import PASS
import products
from common.jobspec import RUN_ID, Job, JobContext, Option
from common.errors import LedgerlaneError, UncertifiedProductError
from common.run import assert_run_id
from jobs import certify as certify_job
from jobs import receipts, status
from jobs.batch_context import BatchContext
from jobs.build import build

SKIPPED, ERROR = "SKIPPED", "ERROR"


def plan(states: dict[str, str], only: str | None = None) -> list[str]:
    """Pure: the products to rebuild, in build order, given each product's state for the run."""
    lacking = {name for name, state in states.items() if state != PASS}
    todo = lacking.union(*(products.dependents(name) for name in lacking))
    if only is not None:
        name = products.product(only).name
        todo &= {name} | products.ancestors(name) | products.dependents(name)
    return products.in_build_order(todo)


def _rebuild(spark: SparkSession, ctx: BatchContext, name: str, run_id: str, engine: str,
             run_receipts: list[dict]) -> dict:
    """Build and certify ``name``; the receipts each step writes are appended to ``run_receipts``."""
    try:
        built = build(spark, ctx, name, run_id, run_receipts=run_receipts)
        run_receipts.append(receipts.as_read(built))
        certified = certify_job.certify(spark, ctx, name, run_id, engine=engine, run_receipts=run_receipts)
        run_receipts.append(receipts.as_read(certified))
    except LedgerlaneError as exc:
        # A failed build records an ERROR receipt that is not in hand: read them all again next time.
        run_receipts.clear()
        run_receipts.extend(receipts.for_run(spark, ctx.tables_root, run_id))
        return {"state": ERROR, "detail": str(exc)}
    return {"state": certified["status"], "version": certified["version"], "build_attempt": built["attempt"],
            "rows": built["outputs"][0]["rows"],
            "detail": "; ".join(certified["reasons"]) or f"version {certified['version']} certified PASS"}


def rerun(spark: SparkSession, ctx: BatchContext, run_id: str, *, product: str | None = None,
          dry_run: bool = False, engine: str = certify_job.DEFAULT_ENGINE) -> dict:
    """Plan from the run's current states, then rebuild + re-certify in dependency order (unless ``dry_run``).

    The run's receipts are read once and kept current as steps add theirs, so no step reads them again.
    """
    run_id = assert_run_id(run_id)
    run_receipts = receipts.for_run(spark, ctx.tables_root, run_id)
    before = status.run_statuses(spark, ctx.tables_root, run_id, run_receipts)
    todo = plan({name: s.state for name, s in before.items()}, product)
    summary = {"run_id": run_id, "product": product, "dry_run": dry_run, "plan": todo,
               "before": {name: s.to_dict() for name, s in before.items()}, "outcomes": {}}
    if dry_run:
        return {**summary, "ok": not todo}
    for name in todo:
        outcomes = summary["outcomes"]
        blocked = [up for up in products.product(name).upstream if outcomes.get(up, {}).get("state") not in (None, PASS)]
        outcomes[name] = ({"state": SKIPPED, "detail": f"upstream {', '.join(blocked)} not PASS"}
                          if blocked else _rebuild(spark, ctx, name, run_id, engine, run_receipts))
    return {**summary, "ok": all(o["state"] == PASS for o in summary["outcomes"].values())}


def describe(summary: dict) -> str:
    lines = [f"rerun of run {summary['run_id']}" + (" (dry run)" if summary["dry_run"] else "") + ":"]
    for name, before in summary["before"].items():
        outcome = summary["outcomes"].get(name)
        planned = "rebuild" if name in summary["plan"] else "untouched"
        after = f" -> {outcome['state']} ({outcome['detail']})" if outcome else ""
        lines.append(f"  {name}: {before['state']} [{planned}]{after}")
    return "\n".join(lines)


def exit_code(summary: dict) -> int:
    """0 when every rebuilt product is PASS (a dry run only plans), else the uncertified code."""
    return 0 if summary["ok"] or summary["dry_run"] else UncertifiedProductError.exit_code


def _run(ctx: JobContext, args: dict) -> dict:
    return rerun(ctx.spark, BatchContext.from_settings(ctx.settings), args["run_id"], product=args["product"],
                 dry_run=args["dry_run"], engine=args["engine"])


JOB = Job(
    name="rerun", group="", module="jobs.rerun", run=_run, describe=describe, exit_code=exit_code,
    summary="Rebuild and re-certify the products of a run that lack a PASS, and their dependents "
            "(certified products stay untouched; exit 7 if a rebuilt product is still not PASS).",
    options=(
        RUN_ID,
        Option("--product", "Limit the rerun to this product's lineage (its ancestors and dependents).",
               choices=products.NAMES),
        Option("--dry-run", "Show each product's state and the plan; change nothing.", is_flag=True),
        certify_job.ENGINE_OPTION,
    ),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
