"""``ledgerlane demo``: the end-to-end run on embedded defaults."""

from __future__ import annotations

import click

from common.commands.context import AppContext, emit, pass_app, step_printer
from common.services import manager


@click.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print the demo summary as JSON.")
@pass_app
def command(app: AppContext, as_json: bool) -> None:
    """Start the services and run the pipeline end to end on local defaults."""
    from jobs import smoke

    settings = app.settings
    progress = step_printer(as_json)
    progress("starting services")
    manager.up(settings.home, settings.cache, progress=progress)
    summary = smoke.run(settings, progress=progress)
    emit(summary, as_json, smoke.describe(summary))
