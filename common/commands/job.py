"""``ledgerlane job``: one-shot Spark jobs, the same code ``spark-submit jobs/<job>.py`` runs."""

from __future__ import annotations

import click

from common.commands.context import AppContext, emit, pass_app
from common.products import NAMES as PRODUCT_NAMES
from jobs.certify import DEFAULT_ENGINE, ENGINES


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


@group.command("build")
@click.argument("product", type=click.Choice(PRODUCT_NAMES))
@click.option("--run-id", required=True)
@click.option("--cutoff", default=None, help="ISO-8601 cut-off with offset (default: the run's, else its basis time).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def build_command(app: AppContext, product: str, run_id: str, cutoff: str | None, as_json: bool) -> None:
    """Build one data product of a run (replaces that run's slice; never duplicates it)."""
    from common.spark import build_session
    from jobs import build
    from jobs.batch_context import BatchContext

    settings = app.settings
    spark = build_session(settings, f"ledgerlane-build-{product}-{run_id}")
    receipt = build.build(spark, BatchContext.from_settings(settings), product, run_id,
                          cutoff=build.parse_cutoff(cutoff))
    emit(receipt, as_json, build.describe(receipt))


@group.command("certify")
@click.argument("product", type=click.Choice(PRODUCT_NAMES))
@click.option("--run-id", required=True)
@click.option("--engine", type=click.Choice(sorted(ENGINES)), default=DEFAULT_ENGINE,
              show_default=True, help="Great Expectations suite, or the same checks as one native Spark aggregate.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def certify_command(app: AppContext, product: str, run_id: str, engine: str, as_json: bool) -> None:
    """Certify the version a run's latest build wrote: PASS or FAIL (exit 7) into meta.certifications."""
    from common.spark import build_session
    from jobs import certify
    from jobs.batch_context import BatchContext

    settings = app.settings
    spark = build_session(settings, f"ledgerlane-certify-{product}-{run_id}")
    summary = certify.certify(spark, BatchContext.from_settings(settings), product, run_id, engine=engine)
    emit(summary, as_json, certify.describe(summary))
    if certify.exit_code(summary):
        raise click.exceptions.Exit(certify.exit_code(summary))
