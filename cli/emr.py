"""``ledgerlane emr package|submit|status|logs|cancel|run``: every job and stream on EMR Serverless.

    ledgerlane --env emr emr package
    ledgerlane --env emr emr submit job-build account_features --run-id r-1
    ledgerlane --env emr emr run --run-id r-1 [--rerun] [--dry-run]

Job names are those of ``jobs/submit.py`` (``stream-ingest``, ``job-build``, ``close``, …); their options
are the job's own, parsed by its declaration before anything reaches AWS. docs/emr.md walks through
an account from empty to a closed run.
"""

from __future__ import annotations

import functools

import click

from cli.context import AppContext, emit, pass_app
from common.edge import progress_printer
from common.errors import ConfigError
from common.jobspec import int_between


def _settings(app: AppContext):
    from emr.aws import assert_ready

    settings = app.settings
    assert_ready(settings)
    return settings


def _submitter(settings, quiet: bool):
    from emr.aws import Clients
    from emr.submitter import Submitter

    return Submitter(Clients.for_settings(settings), settings, progress=progress_printer(quiet))


def _package_provider(app: AppContext, settings, submitter, quiet: bool):
    """Build and upload the package at most once per command, and only if a job run must start."""
    from emr import package

    @functools.lru_cache(maxsize=1)
    def provide():
        progress = progress_printer(quiet)
        local = package.build(settings, config_file=app.config_file, progress=progress)
        return package.upload(local, submitter.s3, settings.emr.artifacts_uri, progress=progress)

    return provide


def _bounded(flag: str, text: str, low: int, high: int) -> int:
    try:
        return int_between(low, high)(text)
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _print_logs(logs: dict[str, str]) -> None:
    for kind in ("stdout", "stderr"):
        if kind in logs:
            click.echo(f"--- driver {kind} (last lines) ---\n{logs[kind]}", err=True)
    if not logs:
        click.echo("--- no driver logs found under emr.logs_uri for this job run ---", err=True)


@click.group("emr")
def group() -> None:
    """Package, submit, watch and read the logs of jobs on EMR Serverless (docs/emr.md)."""


@group.command("package")
@click.option("--json", "as_json", is_flag=True, help="Print the artifacts' S3 URIs as JSON.")
@pass_app
def package_command(app: AppContext, as_json: bool) -> None:
    """Build the environment, code and jars; upload what S3 lacks (content-hashed keys)."""
    settings = _settings(app)
    submitter = _submitter(settings, as_json)
    built = _package_provider(app, settings, submitter, as_json)()
    emit(built.to_dict(), as_json, "\n".join(
        [f"uploaded {len(built.uploaded)}, already there {len(built.reused)}",
         f"  environment  {built.environment}", f"  code         {built.code}",
         f"  entry point  {built.entry_point}", *[f"  jar          {jar}" for jar in built.jars]]))


@group.command("submit", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--attempt", default="1", show_default=True, help="Attempt number: a new one submits again.")
@click.option("--no-wait", is_flag=True, help="Return once the job run is started.")
@click.option("--timeout", "timeout_s", default=None, metavar="SECONDS", help="Stop waiting after this long.")
@click.option("--json", "as_json", is_flag=True, help="Print the job run as JSON.")
@click.argument("job")
@click.argument("job_args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def submit_command(app: AppContext, attempt: str, no_wait: bool, timeout_s: str | None, as_json: bool, job: str,
                   job_args: tuple[str, ...]) -> None:
    """Submit JOB (as `jobs/submit.py` names it) with its own options, once per (run, job, attempt)."""
    from emr.runner import raise_for, submit_and_watch
    from emr.spec import spec_for
    from jobs.registry import find

    attempt_n = _bounded("--attempt", attempt, 1, 9999)
    timeout = None if timeout_s is None else _bounded("--timeout", timeout_s, 1, 7 * 24 * 3600)
    settings = _settings(app)
    spec = spec_for(find(job), list(job_args), settings)
    submitter = _submitter(settings, as_json)
    outcome = submit_and_watch(submitter, spec, _package_provider(app, settings, submitter, as_json), attempt_n,
                               wait=not no_wait, timeout_s=timeout)
    if outcome.logs:
        _print_logs(outcome.logs)
    emit(outcome.to_dict(), as_json, f"{outcome.step} attempt {outcome.attempt}: {outcome.action} job run "
                                     f"{outcome.job_run_id}, {outcome.state}")
    if not no_wait:
        raise_for(outcome, spec.run_id)


@group.command("status")
@click.argument("job_run_id", required=False)
@click.option("--run-id", default=None, help="Every job run of this run instead.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@pass_app
def status_command(app: AppContext, job_run_id: str | None, run_id: str | None, as_json: bool) -> None:
    """The state of one job run, or of every job run of a run."""
    from common.run import assert_run_id
    from emr.submitter import from_summary

    if (job_run_id is None) == (run_id is None):
        raise ConfigError("give either a JOB_RUN_ID or --run-id R")
    submitter = _submitter(_settings(app), True)
    if run_id is not None:
        runs = [r.to_dict() for r in submitter.runs_of(assert_run_id(run_id))]
        emit(runs, as_json, "\n".join(f"{r['step']:<40} attempt {r['attempt']:<3} {r['state']:<10} {r['job_run_id']}"
                                      for r in runs) or f"no job runs of run {run_id}")
        return
    job = submitter.describe(job_run_id)
    named = from_summary(job)
    emit(job, as_json, f"{job_run_id}: {job['state']} {job.get('stateDetails') or ''}".rstrip()
         + (f" ({named.step}, attempt {named.attempt}, run {named.run_id})" if named else ""))


@group.command("logs")
@click.argument("job_run_id")
@click.option("--lines", default="200", show_default=True, help="How many of the last lines of each log.")
@pass_app
def logs_command(app: AppContext, job_run_id: str, lines: str) -> None:
    """The driver's stdout and stderr of a job run, from the S3 logs every run writes."""
    submitter = _submitter(_settings(app), True)
    logs = submitter.driver_logs(job_run_id, lines=_bounded("--lines", lines, 1, 100_000))
    for kind in ("stdout", "stderr"):
        if kind in logs:
            click.echo(f"--- driver {kind} ---\n{logs[kind]}")
    if not logs:
        raise ConfigError(f"no driver logs for job run {job_run_id} under {app.settings.emr.logs_uri} (yet)")


@group.command("cancel")
@click.argument("job_run_id")
@pass_app
def cancel_command(app: AppContext, job_run_id: str) -> None:
    """Cancel a job run (a cancelled step is submitted again by `emr run --rerun`)."""
    submitter = _submitter(_settings(app), True)
    submitter.cancel(job_run_id)
    click.echo(f"{job_run_id}: {submitter.describe(job_run_id)['state']}")


@group.command("run")
@click.option("--run-id", required=True, help="The run to submit, step by step.")
@click.option("--rerun", is_flag=True, help="Submit only what the run lacks, read from its records on S3.")
@click.option("--dry-run", is_flag=True, help="Show the steps that would be submitted; submit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_app
def run_command(app: AppContext, run_id: str, rerun: bool, dry_run: bool, as_json: bool) -> None:
    """A whole run on EMR: migrate, ingest, export labels, build and certify, decide, cases, close."""
    from common.run import assert_run_id
    from emr import runner

    run_id = assert_run_id(run_id)
    settings = _settings(app)
    submitter = _submitter(settings, as_json)
    summary = runner.run(submitter, settings, run_id, _package_provider(app, settings, submitter, as_json),
                         rerun=rerun, dry_run=dry_run, read_state=_state_reader(settings, submitter),
                         progress=progress_printer(as_json))
    if summary.get("logs"):
        _print_logs(summary.pop("logs"))
    emit(summary, as_json, describe_run(summary))
    if "stopped_at" in summary:
        runner.raise_for(runner.Outcome(**summary["stopped_at"]), run_id)


def _state_reader(settings, submitter):
    def read(run_id: str):
        from emr import state
        from emr.aws import new_session

        try:
            import deltalake  # noqa: F401
        except ImportError:
            raise ConfigError("`emr run --rerun` reads the run's Delta tables with deltalake: "
                              "pip install 'ledgerlane[emr]'") from None
        options = state.storage_options(new_session(settings.emr.region), submitter.s3)
        return state.read(settings, run_id, options, submitter.s3)

    return read


def describe_run(summary: dict) -> str:
    head = f"run {summary['run_id']}" + (" (rerun)" if summary["rerun"] else "") + (
        " (dry run)" if summary["dry_run"] else "")
    if not summary["plan"]:
        return f"{head}: nothing to submit" + (" (closed PASS)" if (summary["state"] or {}).get("complete") else "")
    lines = [f"{head}: {len(summary['plan'])} step(s)"]
    lines += [f"  {s['step']:<40} attempt {s['attempt']:<3} {s['action']:<8} {s['state']:<10} {s['job_run_id']}"
              for s in summary["steps"]]
    return "\n".join(lines)

