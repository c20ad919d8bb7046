"""``ledgerlane simulate``: seeded synthetic card traffic, with duplicates and bad records, onto the topic."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from common.commands.context import AppContext, emit, pass_app, step_printer
from common.errors import ConfigError
from simulator.producer import SimulationSummary, simulate
from simulator.world import DEFAULT_DAYS, assert_window_admissible


def _rate(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if not 0 <= value <= 1:   # also refuses nan
        raise click.BadParameter(f"must be a fraction between 0 and 1, found {value}")
    return value


@click.command("simulate")
@click.option("--events", type=click.IntRange(min=1), required=True, help="Valid events to generate.")
@click.option("--seed", type=click.IntRange(min=0), required=True,
              help="Same seed and --start give byte-identical traffic.")
@click.option("--duplicate-rate", type=float, default=0.01, show_default=True, callback=_rate,
              help="Producer-retry re-sends (same key, same bytes) per valid event.")
@click.option("--conflict-rate", type=float, default=0.002, show_default=True, callback=_rate,
              help="Re-sends of an event_id with different content, per valid event.")
@click.option("--bad-rate", type=float, default=0.02, show_default=True, callback=_rate,
              help="Records from the defect corpus, per valid event.")
@click.option("--partitions", type=click.IntRange(1, 1000), default=None,
              help="Partitions if the topic is created. Default: kafka.partitions from the configuration.")
@click.option("--start", default=None, metavar="ISO",
              help="Start of the simulated window, ISO-8601 with offset. Default: now minus --days.")
@click.option("--days", type=click.IntRange(1, 366), default=DEFAULT_DAYS, show_default=True,
              help="Length of the simulated window.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (no progress bar).")
@pass_app
def command(app: AppContext, events: int, seed: int, duplicate_rate: float, conflict_rate: float, bad_rate: float,
            partitions: int | None, start: str | None, days: int, as_json: bool) -> None:
    """Produce synthetic card transactions with ground truth to the configured Kafka topic."""
    if duplicate_rate + conflict_rate > 1:
        raise click.BadParameter("--duplicate-rate + --conflict-rate must be <= 1 (each event is re-sent at most once)")
    # The clock is read here, at the edge, and only to place the default window where ingest accepts it.
    window_start = _window_start(start, days, datetime.now(timezone.utc))
    step_printer(as_json)(f"generating {events:,} events (seed {seed}) from {window_start.isoformat()}")
    bar = _ProgressBar(hidden=as_json)
    try:
        summary = simulate(app.settings, events=events, seed=seed, duplicate_rate=duplicate_rate,
                           conflict_rate=conflict_rate, bad_rate=bad_rate, partitions=partitions,
                           start=window_start, progress=bar.update, days=days)
    finally:
        bar.close()
    emit(summary.to_dict(), as_json, describe(summary))


def _window_start(text: str | None, days: int, now: datetime) -> datetime:
    start = now.replace(microsecond=0) - timedelta(days=days) if text is None else _parse_start(text)
    try:
        assert_window_admissible(start, days, now)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--start'") from None
    return start


def _parse_start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected an ISO-8601 timestamp, found {text!r}", param_hint="'--start'") from None
    if start.tzinfo is None:
        raise click.BadParameter(f"needs a UTC offset (e.g. {text}Z), found {text!r}", param_hint="'--start'")
    return start


class _ProgressBar:
    """A click progress bar on stderr, opened when the producer first reports; nothing at all for --json."""

    def __init__(self, hidden: bool) -> None:
        self.hidden = hidden
        self.bar = None
        self.shown = 0

    def update(self, sent: int, total: int) -> None:
        if self.hidden:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="producing", file=click.get_text_stream("stderr"))
            self.bar.__enter__()
        self.bar.update(sent - self.shown)
        self.shown = sent

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def describe(summary: SimulationSummary) -> str:
    """A small table for people: what was sent, by kind, and how fast."""
    kinds = [f"  {kind:<22}{count:>12,}" for kind, count in summary.by_kind.items()]
    return "\n".join([
        f"topic         {summary.topic} ({summary.partitions} partitions)",
        f"window        {summary.start} .. {summary.end}",
        f"records       {summary.records:,}",
        *kinds,
        f"fraud events  {summary.fraud_events:,}",
        f"ground truth  {summary.ground_truth}",
        f"throughput    {summary.events_per_s:,.0f} events/s ({summary.seconds:.2f} s producing)",
    ])
