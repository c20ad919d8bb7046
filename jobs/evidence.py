"""``ledgerlane evidence show|verify --run-id R``: read a run's bundle, and recheck it.

    ledgerlane evidence show --run-id r-20261122-1 [--json]
    ledgerlane evidence verify --run-id r-20261122-1 [--json]

``verify`` needs no running service: it works after the checkpoints, the topic and the database are gone.
"""

from __future__ import annotations

import sys

from common.bundle_store import open_store
from common.errors import ClosureFailed
from common.evidence import PASS
from common.jobspec import RUN_ID, Job, JobContext
from common.run import assert_run_id
from jobs.closure import describe as describe_verdict
from jobs.closure import verify as verifying


def _show(ctx: JobContext, args: dict) -> dict:
    run_id = assert_run_id(args["run_id"])
    store = open_store(ctx.settings.evidence_root)
    evidence = verifying.load(store, run_id)
    return {**evidence.model_dump(mode="json", exclude={"copied", "checks", "streams", "tables"}),
            "bundle": f"{store.root.rstrip('/')}/{run_id}", "report": f"{store.root.rstrip('/')}/{run_id}/report.html",
            "checks": [c.model_dump() for c in evidence.checks]}


def describe_show(summary: dict) -> str:
    funnel = summary["funnel"]
    lines = [describe_verdict(summary),
             f"  funnel   received {funnel['received']} -> admitted {funnel['admitted']} -> decided "
             f"{funnel['decided']} -> actions {sum(funnel['actions_by_type'].values())} -> cases "
             f"{funnel['cases_opened']}, card blocks {funnel['cards_blocked']}"]
    lines += [f"  {'ok ' if c['ok'] else 'NO '} {c['name']:<22} {c['detail']}" for c in summary["checks"]]
    return "\n".join(lines)


def _verify(ctx: JobContext, args: dict) -> dict:
    return verifying.verify(ctx.spark, ctx.settings, args["run_id"])


def describe_verify(summary: dict) -> str:
    head = (f"run {summary['run_id']}: bundle verified ({summary['files_checked']} files), recorded verdict "
            f"{summary['recorded']}" if summary["verified"] else f"run {summary['run_id']}: bundle does NOT verify")
    return "\n".join([head, *[f"  - {reason}" for reason in summary["reasons"]], f"  evidence {summary['bundle']}"])


SHOW = Job(name="show", group="evidence", module="jobs.evidence", run=_show, describe=describe_show,
           exit_code=lambda s: 0 if s["verdict"] == PASS else ClosureFailed.exit_code,
           summary="A closed run's verdict, reasons, funnel and every proof, from its evidence bundle.",
           options=(RUN_ID,))
VERIFY = Job(name="verify", group="evidence", module="jobs.evidence", run=_verify, describe=describe_verify,
             exit_code=lambda s: 0 if s["verified"] and s["recorded"] == PASS else ClosureFailed.exit_code,
             summary="Recheck a bundle's hashes and its agreement with the Delta logs (no service needed).",
             options=(RUN_ID,))


if __name__ == "__main__":
    sys.exit({"show": SHOW, "verify": VERIFY}[sys.argv[1]].main(sys.argv[2:]) if len(sys.argv) > 1 else 2)
