"""``ledgerlane services up|down|status``: the local Kafka broker and PostgreSQL cluster."""

from __future__ import annotations

import click

from cli.context import AppContext, emit, pass_app
from common.edge import progress_printer
from common.errors import ServiceError
from services import manager


@click.group("services")
def group() -> None:
    """Start, stop and inspect the local Kafka broker and PostgreSQL cluster."""


@group.command("up")
@click.option("--json", "as_json", is_flag=True, help="Print each service's status as JSON.")
@pass_app
def up(app: AppContext, as_json: bool) -> None:
    """Start both services under the home folder (idempotent: running services are left alone)."""
    settings = app.settings
    statuses = manager.up(settings.home, settings.cache, progress=progress_printer(as_json))
    _report(statuses, as_json)


@group.command("down")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def down(app: AppContext, as_json: bool) -> None:
    """Stop the services this home started (pid files); other processes are never touched."""
    outcome = manager.down(app.settings.home)
    emit(outcome, as_json, "\n".join(f"{name}: {state}" for name, state in outcome.items()))


@group.command("reset")
@click.option("--yes", is_flag=True, help="Confirm: delete the services' data under this home.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def reset(app: AppContext, yes: bool, as_json: bool) -> None:
    """Stop the services and delete their data (for a half-initialised or broken data folder)."""
    if not yes:
        raise click.UsageError("reset deletes the PostgreSQL and Kafka data of this home; pass --yes to confirm")
    outcome = manager.reset(app.settings.home, progress=progress_printer(as_json))
    emit(outcome, as_json, "\n".join(f"{name}: {state}" for name, state in outcome.items()))


@group.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Health, host and port of each service; exits 4 when any is unhealthy."""
    statuses = manager.status(app.settings.home)
    _report(statuses, as_json)
    unhealthy = [name for name, st in statuses.items() if not st.healthy]
    if unhealthy:
        raise ServiceError(f"not healthy: {', '.join(unhealthy)} (run `ledgerlane services up`)")


def _report(statuses: dict, as_json: bool) -> None:
    payload = {name: st.to_dict() for name, st in statuses.items()}
    lines = [
        f"{name:<9} {'healthy' if st.healthy else 'DOWN':<8} {st.host}:{st.port}  pid={st.pid}  {st.detail}"
        for name, st in statuses.items()
    ]
    emit(payload, as_json, "\n".join(lines))
