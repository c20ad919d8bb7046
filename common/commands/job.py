"""``ledgerlane job``: one-shot Spark jobs, the same code ``spark-submit jobs/<job>.py`` runs."""

from __future__ import annotations

import click

from common.commands.context import AppContext, emit, pass_app


@click.group("job")
def group() -> None:
    """Run one-shot jobs locally (each is also a spark-submit entrypoint in jobs/)."""


@group.command("export-labels")
@click.option("--run-id", required=True)
@click.option("--max-rows", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Copy at most this many label events; the next run continues from the watermark.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def export_labels_command(app: AppContext, run_id: str, max_rows: int, as_json: bool) -> None:
    """Copy new label events from PostgreSQL into the Delta table labels.label_events."""
    from common.run import assert_run_id
    from common.spark import build_session
    from jobs import export_labels

    settings = app.settings
    spark = build_session(settings, f"ledgerlane-export-labels-{assert_run_id(run_id)}")
    summary = export_labels.export(spark, settings, run_id, max_rows=max_rows)
    emit(summary, as_json, export_labels.describe(summary))
