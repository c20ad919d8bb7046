"""``ledgerlane db``: migrate the human-loop database, show migration status, prove readiness."""

from __future__ import annotations

from datetime import timedelta

import click

from cli.context import AppContext, emit, pass_app
from human_loop import migrate as migrations
from human_loop import readiness as ready
from common.endpoints import postgres_params
from common.errors import LedgerlaneError


@click.group("db")
def group() -> None:
    """The human-loop PostgreSQL database."""


@group.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def status_command(app: AppContext, as_json: bool) -> None:
    """Each migration: applied, pending or drifted. Exit 1 when not at head."""
    state = migrations.status(postgres_params(app.settings))
    lines = [f"{v['version']:<36} {v['state']:<8} {v['applied_at'] or ''}" for v in state["versions"]]
    lines += [f"problem: {p}" for p in state["problems"]]
    lines.append("at head" if state["at_head"] else "NOT at head")
    emit(state, as_json, "\n".join(lines))
    if not state["at_head"]:
        raise click.exceptions.Exit(1)


@group.command("readiness")
@click.option("--require-worker", "workers", multiple=True, default=ready.DEFAULT_WORKERS, show_default=True,
              help="A worker whose heartbeat must be fresh (repeatable).")
@click.option("--fresh-within", type=click.IntRange(min=1), default=int(ready.DEFAULT_FRESH_WITHIN.total_seconds()),
              show_default=True, help="Seconds within which each required worker must have beaten.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def readiness_command(app: AppContext, workers: tuple[str, ...], fresh_within: int, as_json: bool) -> None:
    """Reachable, migrated, append-only guards, privileges, heartbeats. Exit 1 when any check fails."""
    try:
        params = postgres_params(app.settings)
    except LedgerlaneError as exc:
        checks = ready.unreachable(str(exc))
    else:
        checks = ready.readiness(params, workers=workers, fresh_within=timedelta(seconds=fresh_within))
    report = ready.as_dict(checks)
    human = "\n".join(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<20} {c.reason}" for c in checks)
    emit(report, as_json, human + f"\n{'ready' if report['ready'] else 'NOT ready'}")
    if not report["ready"]:
        raise click.exceptions.Exit(1)
