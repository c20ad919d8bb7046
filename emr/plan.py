"""A whole run on EMR Serverless: its steps in the order ``jobs/run.py`` runs them locally, one job run each.

    migrate -> ingest --until-caught-up -> export-labels -> build + certify each product (dependency
    order) -> decide --until-caught-up -> cases --until-caught-up -> close

``emr run`` submits them in order and stops at the first failure; submitted again, it reuses the job
runs it already has (same names, same client tokens). ``--rerun`` submits only what the run lacks: the
first step without its proof and what comes after it, where a product certified PASS (and not built
from one being rebuilt) stays untouched, as ``ledgerlane rerun`` decides locally. Proofs are the run's
own records on S3 (``emr/state.py``): ingest's catch-up proof, the products' receipts and
certifications, the closure's ``_COMPLETE``; the steps that leave no per-run record readable from
here (migrate and the label export write to PostgreSQL; decide and cases leave receipts but no
catch-up proof) are proven by a job run of theirs that ended SUCCESS.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.results import PASS
from jobs.rerun import plan as product_plan
from jobs.status import UNCERTIFIED
from products import NAMES
from emr.state import RunState
from emr.submitter import JobRun

TABLE, EMR_HISTORY = "table", "emr"


@dataclass(frozen=True)
class Step:
    name: str                         # the step as `jobs/submit.py` names its job: "stream-ingest"
    argv: tuple[str, ...]
    proof: str                        # TABLE or EMR_HISTORY
    product: str | None = None
    kind: str = ""                    # "build" | "certify" for product steps

    @property
    def key(self) -> str:
        """The step as its job runs are named (``emr.spec.JobSpec.step``)."""
        return ".".join((self.name, *([self.product] if self.product else [])))


def run_steps(run_id: str) -> list[Step]:
    run = ("--run-id", run_id)
    steps = [Step("db-migrate", run, EMR_HISTORY), Step("stream-ingest", (*run, "--until-caught-up"), TABLE),
             Step("job-export-labels", run, EMR_HISTORY)]
    for name in NAMES:
        steps += [Step("job-build", (name, *run), TABLE, name, "build"),
                  Step("job-certify", (name, *run), TABLE, name, "certify")]
    return steps + [Step("stream-decide", (*run, "--until-caught-up"), EMR_HISTORY),
                    Step("stream-cases", (*run, "--until-caught-up"), EMR_HISTORY),
                    Step("close", run, TABLE)]


def is_proven(step: Step, state: RunState, history: dict[str, list[JobRun]]) -> bool:
    if step.proof == EMR_HISTORY:
        return any(run.state == "SUCCESS" for run in history.get(step.key, []))
    if step.product:
        return state.products.get(step.product) == PASS
    return state.caught_up if step.name == "stream-ingest" else state.complete


def rerun_steps(steps: list[Step], state: RunState, history: dict[str, list[JobRun]]) -> list[Step]:
    """The first step without its proof and every later one, products as the rerun planner says."""
    if state.complete:
        return []
    first = next((i for i, step in enumerate(steps) if not is_proven(step, state, history)), len(steps))
    rebuild = set(product_plan(state.products))
    chosen = []
    for step in steps[first:]:
        if step.product is None:
            chosen.append(step)
        elif step.product in rebuild and (step.kind == "certify" or state.products[step.product] != UNCERTIFIED):
            chosen.append(step)
    return chosen


def attempt_for(step: Step, history: dict[str, list[JobRun]], *, rerun: bool) -> int:
    """The latest attempt of the step, or the next one when a rerun needs it again; 1 for a new step."""
    runs = history.get(step.key, [])
    if not runs:
        return 1
    latest = max(runs, key=lambda r: r.attempt)
    return latest.attempt + 1 if rerun and (latest.failed or latest.state == "SUCCESS") else latest.attempt


def by_step(runs: list[JobRun]) -> dict[str, list[JobRun]]:
    grouped: dict[str, list[JobRun]] = {}
    for run in runs:
        grouped.setdefault(run.step, []).append(run)
    return grouped
