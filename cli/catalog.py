"""``ledgerlane catalog``: every table name and its location."""

from __future__ import annotations

import click

from common.catalog import TABLES, catalog
from cli.context import AppContext, emit, pass_app


@click.command("catalog")
@click.option("--json", "as_json", is_flag=True, help="Print {table: location} as JSON.")
@pass_app
def command(app: AppContext, as_json: bool) -> None:
    """List every Delta table ledgerlane writes and where it lives."""
    locations = catalog(app.settings.tables_root)
    width = max(len(name) for name in locations)
    human = "\n".join(f"{name:<{width}}  {path}  ({TABLES[name].description})" for name, path in locations.items())
    emit(locations, as_json, human)

