"""The ``ledgerlane`` command line. Jobs and streams come from their declarations (``jobs/registry.py``);
the other command groups live in ``cli/<group>.py``, one ``add_command`` line each.

Exit codes: 0 success, 1 generic failure, 2 usage or configuration error, 3 missing machine
prerequisite, 4 service error, 5 identity error, 6 idempotency conflict, 7 uncertified product,
8 closure failed, 9 not caught up, 10 state drift, 11 lock held,
12 EMR job run failed, 13 EMR job run still running. ``LedgerlaneError.exit_code`` is the single source of these.
"""

from __future__ import annotations

import sys

import click

from cli import cases, catalog, db, demo, emr, labels, services, simulate
from cli.context import AppContext
from cli.declared import command as declared_command
from common.edge import guarded, is_verbose, set_verbose


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="LEDGERLANE_HOME", default=None,
              help="State folder (tables, checkpoints, services). Default: $LEDGERLANE_HOME or ./.ledgerlane")
@click.option("--env", "env_name", default=None, envvar="LEDGERLANE_ENV",
              help="Configuration environment: conf/<env>.toml (default: local).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Explicit configuration file instead of conf/<env>.toml.")
@click.option("--verbose", is_flag=True, help="Show Spark's log and full stack traces.")
@click.version_option(package_name="ledgerlane")
@click.pass_context
def cli(ctx: click.Context, home: str | None, env_name: str | None, config_file: str | None, verbose: bool) -> None:
    """ledgerlane: governed fraud decisioning on Spark and Delta Lake."""
    set_verbose(verbose)
    ctx.obj = AppContext(home=home, env_name=env_name, config_file=config_file, verbose=verbose or is_verbose())


@click.group("stream")
def stream_group() -> None:
    """Run the streaming queries (checkpointed, idempotent foreachBatch writes)."""


@click.group("job")
def job_group() -> None:
    """Run one-shot jobs locally (each is also `spark-submit jobs/submit.py <job>`)."""


@click.group("decisions")
def decisions_group() -> None:
    """What the decision lane decided."""


@click.group("evidence")
def evidence_group() -> None:
    """Closed runs' evidence bundles: show them, verify them."""


GROUPS = {"stream": stream_group, "job": job_group, "db": db.group, "decisions": decisions_group,
          "evidence": evidence_group, "": cli}

for group in (services.group, catalog.command, demo.command, stream_group, simulate.command, db.group,
              labels.group, cases.group, job_group, decisions_group, evidence_group, emr.group):
    cli.add_command(group)


def add_declared_jobs() -> None:
    from jobs.registry import JOBS

    for job in JOBS:
        GROUPS[job.group].add_command(declared_command(job))


add_declared_jobs()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: errors become their exit codes and one paragraph (``common.edge``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: _run_click(args), verbose="--verbose" in args or is_verbose())


def _run_click(args: list[str]) -> int:
    try:
        # With standalone_mode=False click returns (not raises) the code of a `click.exceptions.Exit`.
        code = cli.main(args=args, prog_name="ledgerlane", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
