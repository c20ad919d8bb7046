"""``ledgerlane rerun``: rebuild and re-certify the products of a run that lack a PASS (and their dependents)."""

from __future__ import annotations

import click

from common.commands.context import AppContext, emit, pass_app
from common.products import NAMES as PRODUCT_NAMES
from jobs.certify import DEFAULT_ENGINE, ENGINES


@click.command("rerun")
@click.option("--run-id", required=True)
@click.option("--product", type=click.Choice(PRODUCT_NAMES), default=None,
              help="Limit the rerun to this product's lineage (its ancestors and dependents).")
@click.option("--dry-run", is_flag=True, help="Show each product's state and the plan; change nothing.")
@click.option("--engine", type=click.Choice(sorted(ENGINES)), default=DEFAULT_ENGINE, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def command(app: AppContext, run_id: str, product: str | None, dry_run: bool, engine: str, as_json: bool) -> None:
    """Rebuild and re-certify the products of a run that lack a PASS, and their dependents.

    Certified products stay untouched; exit 7 if a rebuilt product is still not PASS.
    """
    from common.spark import build_session
    from jobs import rerun
    from jobs.batch_context import BatchContext

    settings = app.settings
    spark = build_session(settings, f"ledgerlane-rerun-{run_id}")
    summary = rerun.rerun(spark, BatchContext.from_settings(settings), run_id, product=product, dry_run=dry_run,
                          engine=engine)
    emit(summary, as_json, rerun.describe(summary))
    if rerun.exit_code(summary):
        raise click.exceptions.Exit(rerun.exit_code(summary))
