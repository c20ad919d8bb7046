"""``ledgerlane labels``: record labels, import a chargeback feed, ask what was known as of a time."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import click

from common.bounds import build_model, shown
from cli.context import AppContext, emit, pass_app
from human_loop import label_import
from human_loop import labels as repo
from human_loop.connection import connect
from common.endpoints import postgres_params
from common.errors import ConfigError

KEY_NAMESPACE = uuid.UUID("8f1b7a3e-2c64-4d2a-9e55-3b7c0d9f6a21")
# What a person typed for each field of a label, so a refusal names the option.
ADD_OPTIONS = {"idempotency_key": "--key", "account_id": "--account", "event_id": "--event", "label": "--label",
               "source": "--source", "actor": "--actor", "observed_at": "--observed-at",
               "corrects_label_event_id": "--corrects", "note": "--note"}


def parse_time(text: str, option: str) -> datetime:
    """ISO-8601 with an offset (``Z`` allowed), or ``now``; a naive time is ambiguous and refused."""
    if text == "now":
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(
            f"{option} must be an ISO-8601 time with a UTC offset such as 2025-01-31T12:00:00Z, found {shown(text)}"
        )
    return moment


def label_line(label: repo.StoredLabel) -> str:
    subject = f"{label.account_id}/{label.event_id}" if label.event_id else label.account_id
    return (f"#{label.label_event_id:<8} {subject:<40} {label.label:<11} observed {label.observed_at:%Y-%m-%dT%H:%M:%S%z} "
            f"recorded {label.recorded_at:%Y-%m-%dT%H:%M:%S%z} {label.source}/{label.actor} key {label.idempotency_key}")


@click.group("labels")
def group() -> None:
    """Label events in the human-loop database (append-only, bitemporal)."""


@group.command("add")
@click.option("--account", "account_id", required=True)
@click.option("--event", "event_id", default=None, help="The transaction the label is about (default: the account).")
@click.option("--label", type=click.Choice(repo.LABELS), required=True)
@click.option("--source", type=click.Choice(repo.SOURCES), default="analyst", show_default=True)
@click.option("--actor", required=True, help="Who asserts the label (an analyst id).")
@click.option("--observed-at", required=True,
              help="When the label was true: ISO-8601 with offset, or 'now' (each run of 'now' is a new time, "
                   "so only an explicit time makes a repeated command a no-op).")
@click.option("--corrects", "corrects_label_event_id", type=int, default=None,
              help=f"label_event_id this one corrects (1 to {repo.MAX_ID}).")
@click.option("--note", default="", help=f"Free text, at most {repo.MAX_NOTE} characters.")
@click.option("--key", "idempotency_key", default=None, help="Idempotency key (default: derived from the content).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def add_command(app: AppContext, idempotency_key: str | None, as_json: bool, **fields) -> None:
    """Record one label; the same content again is a no-op, the same --key with other content an error."""
    now = datetime.now(timezone.utc)
    fields["observed_at"] = repo.assert_observed_at(
        "--observed-at", parse_time(fields["observed_at"], "--observed-at"), now=now)
    key = idempotency_key or f"lbl-{uuid.uuid5(KEY_NAMESPACE, repr(sorted(fields.items())))}"
    event = build_model(repo.LabelEventIn, {"idempotency_key": key, **fields}, names=ADD_OPTIONS)
    with connect(postgres_params(app.settings)) as conn:
        stored = repo.add_label(conn, event)
    emit(stored.model_dump(mode="json"), as_json, label_line(stored))


@group.command("import")
@click.argument("feed", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(label_import.FORMATS), default=None,
              help="Feed format (default: from the file name, .csv or .jsonl).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def import_command(app: AppContext, feed: Path, fmt: str | None, as_json: bool) -> None:
    """Import a chargeback feed (CSV or JSONL, see human_loop/label_import.py); all or nothing, idempotent."""
    rows = label_import.read_feed(feed, fmt)  # format and size are refused here, before connecting
    with connect(postgres_params(app.settings), application_name="ledgerlane-label-import") as conn:
        report = label_import.import_labels(conn, rows)
    emit({"feed": str(feed), **report}, as_json,
         f"{feed}: {report['rows']} records, {report['inserted']} new, {report['unchanged']} already recorded")


@group.command("as-of")
@click.option("--at", "at_text", required=True, help="ISO-8601 time with offset, or 'now'.")
@click.option("--account", "account_id", default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def as_of_command(app: AppContext, at_text: str, account_id: str | None, as_json: bool) -> None:
    """For each subject, the newest label recorded at or before --at (what we knew then)."""
    at = parse_time(at_text, "--at")
    with connect(postgres_params(app.settings)) as conn:
        found = repo.as_of(conn, at, account_id)
    payload = {"at": at.isoformat(), "account_id": account_id, "labels": [label.model_dump(mode="json") for label in found]}
    human = "\n".join(label_line(label) for label in found) or f"no labels recorded at or before {at.isoformat()}"
    emit(payload, as_json, human)


@group.command("chargebacks-from-truth")
@click.argument("ground_truth", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Feed to write (default: chargebacks-<name>.jsonl next to the input).")
@click.option("--include-legitimate", is_flag=True, help="Also emit a 'legitimate' label for non-fraud events.")
@click.option("--json", "as_json", is_flag=True)
def chargebacks_command(ground_truth: Path, output: Path | None, include_legitimate: bool, as_json: bool) -> None:
    """Turn simulator ground truth (<home>/simulator/ground_truth-*.jsonl) into a chargeback feed."""
    output = output or ground_truth.with_name(f"chargebacks-{ground_truth.stem}.jsonl")
    records = label_import.chargebacks_from_ground_truth(
        label_import.read_jsonl(ground_truth), include_legitimate=include_legitimate
    )
    count = label_import.write_jsonl(records, output)
    emit({"feed": str(output), "records": count}, as_json, f"wrote {count} chargeback records to {output}")
