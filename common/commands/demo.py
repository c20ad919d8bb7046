"""``ledgerlane demo``: the end-to-end run on embedded defaults."""

from __future__ import annotations

import click

from common.commands.context import AppContext, emit, pass_app, step_printer


@click.command("demo")
@click.option("--events", type=click.IntRange(1, 10_000_000), default=5000, show_default=True,
              help="Valid card transactions to simulate.")
@click.option("--seed", type=int, default=7, show_default=True, help="Simulator seed (same seed, same traffic).")
@click.option("--run-id", default=None, help="Run id (default: a new one).")
@click.option("--json", "as_json", is_flag=True, help="Print the demo summary as JSON.")
@pass_app
def command(app: AppContext, events: int, seed: int, run_id: str | None, as_json: bool) -> None:
    """Start the services and run the pipeline end to end on local defaults."""
    from jobs import demo

    summary = demo.run(app.settings, events=events, seed=seed, run_id=run_id, progress=step_printer(as_json))
    emit(summary, as_json, demo.describe(summary))
    if demo.exit_code(summary):
        raise click.exceptions.Exit(demo.exit_code(summary))
