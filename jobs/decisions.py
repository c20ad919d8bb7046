"""What a run decided: counts by outcome and by reason code, actions by type, and a sample.

    ledgerlane decisions show --run-id r-20261122-1 [--json]
    spark-submit jobs/submit.py show --run-id r-20261122-1
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import catalog, tables
from common.jobspec import RUN_ID, Job, JobContext, Option, int_between
from common.run import assert_run_id

DECISIONS, ACTIONS = "decision.decisions", "decision.actions"


def show(spark: SparkSession, tables_root: str, run_id: str, *, sample: int = 5) -> dict:
    run_id = assert_run_id(run_id)
    empty = "run_id string, outcome string, reasons array<string>, action_type string, event_id string"
    decided = tables.read_or_empty(spark, catalog.location(tables_root, DECISIONS), empty).where(F.col("run_id") == run_id)
    acted = tables.read_or_empty(spark, catalog.location(tables_root, ACTIONS), empty).where(F.col("run_id") == run_id)
    count_by = lambda frame, column: {r[0]: r[1] for r in frame.groupBy(column).count().collect()}  # noqa: E731
    reasons = decided.select(F.explode("reasons").alias("reason"))
    rows = decided.orderBy("event_id").limit(sample).collect() if sample else []
    return {"run_id": run_id, "decisions": decided.count(), "by_outcome": count_by(decided, "outcome"),
            "by_reason": count_by(reasons, "reason"), "actions_by_type": count_by(acted, "action_type"),
            "sample": [{k: row[k] for k in ("decision_id", "event_id", "account_id", "outcome", "score", "reasons",
                                            "policy_version")} for row in rows]}


def describe(summary: dict) -> str:
    lines = [f"run {summary['run_id']}: {summary['decisions']} decisions"]
    lines += [f"  outcome {k:<8} {v:>8}" for k, v in sorted(summary["by_outcome"].items())]
    lines += [f"  reason  {k:<22} {v:>8}" for k, v in sorted(summary["by_reason"].items(), key=lambda kv: -kv[1])]
    lines += [f"  action  {k:<12} {v:>8}" for k, v in sorted(summary["actions_by_type"].items())]
    lines += [f"  e.g. {s['event_id']} {s['outcome']} score {s['score']} {','.join(s['reasons'])}"
              for s in summary["sample"]]
    return "\n".join(lines)


def _run(ctx: JobContext, args: dict) -> dict:
    return show(ctx.spark, ctx.settings.tables_root, args["run_id"], sample=args["sample"])


JOB = Job(
    name="show", group="decisions", module="jobs.decisions", run=_run, describe=describe,
    summary="A run's decisions: counts by outcome and reason, actions by type, and a sample.",
    options=(RUN_ID, Option("--sample", "How many decisions to show.", parse=int_between(0, 1000), default=5,
                            metavar="N")),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
