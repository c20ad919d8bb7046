"""``ledgerlane stream …``: the Structured Streaming queries."""

from __future__ import annotations

import click

from common.commands.context import AppContext, emit, pass_app, step_printer


@click.group("stream")
def group() -> None:
    """Run the streaming queries (checkpointed, idempotent foreachBatch writes)."""


@group.command("ingest")
@click.option("--run-id", required=True, help="Run this ingest belongs to; its basis is recorded on first use.")
@click.option("--until-caught-up", is_flag=True,
              help="Process everything up to the run basis, prove lag 0 per partition, then exit.")
@click.option("--trigger-seconds", type=click.IntRange(1, 3600), default=5, show_default=True,
              help="Micro-batch interval when running continuously.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@pass_app
def ingest(app: AppContext, run_id: str, until_caught_up: bool, trigger_seconds: int, as_json: bool) -> None:
    """Kafka -> admitted / duplicates / quarantine Delta tables with a receipt per batch (exit 9 if not caught up)."""
    from common.spark import build_session
    from streaming import ingest as lane

    settings = app.settings
    progress = step_printer(as_json)
    progress("starting Spark")
    spark = build_session(settings, f"ledgerlane-ingest-{run_id}")
    summary = lane.ingest(spark, settings, run_id, until_caught_up=until_caught_up,
                          trigger_seconds=trigger_seconds, progress=progress)
    emit(summary, as_json, lane.describe(summary))
