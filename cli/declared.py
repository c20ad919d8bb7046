"""CLI commands generated from job declarations (``common.jobspec.Job``): the same options, run,
summary and exit code as the job's ``spark-submit`` door."""

from __future__ import annotations

import click

from cli.context import AppContext
from common.jobspec import Job


def command(job: Job) -> click.Command:
    params: list[click.Parameter] = [
        click.Argument([a.name], type=click.Choice(a.choices) if a.choices else None) for a in job.arguments]
    for option in job.options:
        if option.is_flag:
            params.append(click.Option([option.flag], is_flag=True, help=option.help))
        else:
            # Values stay text here: the declaration parses them, so both doors refuse the same way.
            params.append(click.Option([option.flag], default=None if option.default is None else str(option.default),
                                       show_default=option.default is not None, metavar=option.metavar,
                                       type=click.Choice(option.choices) if option.choices else str,
                                       help=option.help + (" [required]" if option.required else "")))
    params.append(click.Option(["--json", "as_json"], is_flag=True, help="Print the summary as JSON."))

    def callback(as_json: bool, **raw) -> None:
        app = click.get_current_context().find_object(AppContext)
        code = job.execute(raw, settings=app.settings, as_json=as_json, verbose=app.verbose)
        if code:
            raise click.exceptions.Exit(code)

    return click.Command(job.name, params=params, callback=callback, help=job.summary)
