"""Submitting steps and whole runs: one job run per step, waited for, its driver's logs read on failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from common.config import Settings
from common.errors import JobRunFailed, StillRunning
from emr import plan
from emr.package import Package
from emr.spec import STREAMING, JobSpec, spec_for
from emr.submitter import Submitter
from jobs.registry import find


@dataclass
class Outcome:
    """What happened to one step: started, reused (found by name), planned (dry run)."""

    step: str
    attempt: int
    action: str
    state: str = ""
    job_run_id: str = ""
    details: str = ""
    logs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"step": self.step, "attempt": self.attempt, "action": self.action, "state": self.state,
                "job_run_id": self.job_run_id, "details": self.details}


def submit_and_watch(submitter: Submitter, spec: JobSpec, package: Callable[[], Package], attempt: int, *,
                     wait: bool = True, timeout_s: float | None = None, log_lines: int = 200) -> Outcome:
    """Start (or find) the job run and, unless told not to, watch it; a failed run comes with its logs.

    A STREAMING run is watched until it is RUNNING: it is meant to go on.
    """
    run, started = submitter.start(spec, package, attempt)
    outcome = Outcome(spec.step, attempt, "started" if started else "reused", run.state, run.job_run_id)
    if wait and run.state != "SUCCESS":
        run = submitter.wait(run, timeout_s=timeout_s, until_running=spec.mode == STREAMING)
        outcome.state, outcome.details = run.state, run.details
    if run.failed:
        outcome.logs = submitter.driver_logs(run.job_run_id, lines=log_lines)
    return outcome


def raise_for(outcome: Outcome, run_id: str) -> None:
    if outcome.state in ("FAILED", "CANCELLED"):
        raise JobRunFailed(
            f"{outcome.step} attempt {outcome.attempt} (job run {outcome.job_run_id}) ended {outcome.state}"
            f"{': ' + outcome.details if outcome.details else ''}; the driver's output is above. After fixing "
            f"the cause, `ledgerlane emr run --run-id {run_id} --rerun` submits what the run lacks")
    if outcome.state not in ("SUCCESS", "RUNNING") and outcome.action != "planned":
        raise StillRunning(f"{outcome.step} attempt {outcome.attempt} (job run {outcome.job_run_id}) is still "
                           f"{outcome.state}; watch it with `ledgerlane emr status {outcome.job_run_id}`")


def run(submitter: Submitter, settings: Settings, run_id: str, package: Callable[[], Package], *,
        rerun: bool = False, dry_run: bool = False, read_state: Callable[[str], object] | None = None,
        progress: Callable[[str], None] = lambda _: None) -> dict:
    """Submit a run's steps in order (or, with ``rerun``, only what it lacks); stop at the first failure."""
    history = plan.by_step(submitter.runs_of(run_id))
    steps = plan.run_steps(run_id)
    state = None
    if rerun:
        state = read_state(run_id)
        steps = plan.rerun_steps(steps, state, history)
    summary = {"run_id": run_id, "rerun": rerun, "dry_run": dry_run, "plan": [s.key for s in steps],
               "state": state.to_dict() if state else None, "steps": []}
    for step in steps:
        spec = spec_for(find(step.name), list(step.argv), settings)
        attempt = plan.attempt_for(step, history, rerun=rerun)
        if dry_run:
            summary["steps"].append(Outcome(step.key, attempt, "planned").to_dict())
            continue
        progress(f"step {step.key} (attempt {attempt})")
        outcome = submit_and_watch(submitter, spec, package, attempt)
        summary["steps"].append(outcome.to_dict())
        if outcome.state != "SUCCESS":
            summary["stopped_at"], summary["logs"] = outcome.to_dict(), outcome.logs
            return summary
    return summary
