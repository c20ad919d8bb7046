"""``ledgerlane cases``: list, show, annotate and close the cases opened by the case worker."""

from __future__ import annotations

import click

from cli.context import AppContext, emit, pass_app
from human_loop import cases as repo
from human_loop.connection import connect
from common.endpoints import postgres_params
from common.identity import assert_identity


def assert_event_options(actor: str, body_option: str, body: str, key: str | None) -> None:
    """Refuse what the database would, before connecting, naming the option and its bound."""
    assert_identity("--actor", actor)
    repo.assert_body(body_option, body)
    if key is not None:
        assert_identity("--key", key)


def case_line(case: dict) -> str:
    return (f"{case['case_id']}  {case['status']:<6}  account {case['account_id']:<24} "
            f"opened {case['opened_at']:%Y-%m-%dT%H:%M:%S%z}  events {case['event_count']}  {case['reason']}")


@click.group("cases")
def group() -> None:
    """Cases in the human-loop database (append-only: a case's history is its events)."""


@group.command("list")
@click.option("--status", type=click.Choice(["open", "closed"]), default=None)
@click.option("--account", "account_id", default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def list_command(app: AppContext, status: str | None, account_id: str | None, limit: int, as_json: bool) -> None:
    """Newest cases first."""
    with connect(postgres_params(app.settings)) as conn:
        found = repo.list_cases(conn, status=status, account_id=account_id, limit=limit)
    emit(found, as_json, "\n".join(case_line(case) for case in found) or "no cases")


@group.command("show")
@click.argument("case_id")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def show_command(app: AppContext, case_id: str, as_json: bool) -> None:
    """One case and its events in order."""
    case_uuid = repo.parse_case_id(case_id)
    with connect(postgres_params(app.settings)) as conn:
        case = repo.get_case(conn, case_uuid)
        events = repo.case_events(conn, case_uuid)
    lines = [case_line(case)] + [
        f"  #{e['case_event_id']:<6} {e['recorded_at']:%Y-%m-%dT%H:%M:%S%z} {e['kind']:<9} {e['actor']:<16} {e['body']}"
        for e in events
    ]
    emit({**case, "events": events}, as_json, "\n".join(lines))


@group.command("note")
@click.argument("case_id")
@click.option("--actor", required=True)
@click.option("--text", required=True, help=f"At most {repo.MAX_BODY:,} characters.")
@click.option("--key", default=None, help="Idempotency key (default: derived from case, actor and text).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def note_command(app: AppContext, case_id: str, actor: str, text: str, key: str | None, as_json: bool) -> None:
    """Add a note to a case (open or closed)."""
    case_uuid = repo.parse_case_id(case_id)
    assert_event_options(actor, "--text", text, key)
    with connect(postgres_params(app.settings)) as conn:
        event = repo.add_note(conn, case_uuid, actor, text, key)
    emit(event, as_json, f"note #{event['case_event_id']} on case {event['case_id']}")


@group.command("close")
@click.argument("case_id")
@click.option("--actor", required=True)
@click.option("--reason", required=True, help=f"At most {repo.MAX_BODY:,} characters.")
@click.option("--key", default=None, help="Idempotency key (default: derived from case, actor and reason).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def close_command(app: AppContext, case_id: str, actor: str, reason: str, key: str | None, as_json: bool) -> None:
    """Close a case; closing a closed case reports the event that closed it."""
    case_uuid = repo.parse_case_id(case_id)
    assert_event_options(actor, "--reason", reason, key)
    with connect(postgres_params(app.settings)) as conn:
        event = repo.close_case(conn, case_uuid, actor, reason, key)
    emit(event, as_json, f"case {event['case_id']} closed by {event['actor']} (event #{event['case_event_id']})")
