"""``ledgerlane simulate``: seeded synthetic card traffic, with duplicates and bad records, onto the topic."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from cli.context import AppContext, emit, pass_app
from common.edge import progress_printer
from common.errors import ConfigError
from simulator.producer import MAX_EVENTS, MAX_RATE, SimulationSummary, simulate, steady_events
from simulator.world import DEFAULT_DAYS, assert_window_admissible


def _rate(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    if not 0 <= value <= 1:   # also refuses nan
        raise click.BadParameter(f"must be a fraction between 0 and 1, found {value}")
    return value


def _events(_ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_EVENTS:
        raise click.BadParameter(f"must be between 1 and {MAX_EVENTS:,} (the simulator's bound per run), "
                                 f"found {value:,}; send more in several runs")
    return value


@click.command("simulate")
@click.option("--events", type=int, default=None, callback=_events,
              help=f"Valid events to generate, at most {MAX_EVENTS:,} (or use --rate with --duration).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True, max=MAX_RATE), default=None,
              metavar="EVENTS_PER_S", help="Steady mode: send valid events at this pace (with --duration).")
@click.option("--duration", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="Steady mode: how long to send at --rate; the run sends rate x duration valid events.")
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
def command(app: AppContext, events: int | None, rate: float | None, duration: int | None, seed: int,
            duplicate_rate: float, conflict_rate: float, bad_rate: float, partitions: int | None, start: str | None,
            days: int, as_json: bool) -> None:
    """Produce synthetic card transactions with ground truth to the configured Kafka topic.

    Records are generated as they are sent, so memory stays flat at any size.
    """
    events = _how_many(events, rate, duration)
    if duplicate_rate + conflict_rate > 1:
        raise click.BadParameter("--duplicate-rate + --conflict-rate must be <= 1 (each event is re-sent at most once)")
    # The clock is read here, at the edge, and only to place the default window where ingest accepts it.
    window_start = _window_start(start, days, datetime.now(timezone.utc))
    pace = f" at {rate:,g} events/s for {duration:,} s" if rate else ""
    progress_printer(as_json)(f"generating {events:,} events{pace} (seed {seed}) from {window_start.isoformat()}")
    bar = _ProgressBar(hidden=as_json)
    try:
        summary = simulate(app.settings, events=events, seed=seed, duplicate_rate=duplicate_rate,
                           conflict_rate=conflict_rate, bad_rate=bad_rate, partitions=partitions,
                           start=window_start, progress=bar.update, days=days, rate=rate)
    finally:
        bar.close()
    emit(summary.to_dict(), as_json, describe(summary))


def _how_many(events: int | None, rate: float | None, duration: int | None) -> int:
    """--events, or --rate with --duration (steady mode): exactly one of the two."""
    if (rate is None) != (duration is None):
        raise click.UsageError("--rate and --duration go together (steady mode)")
    if (events is None) == (rate is None):
        raise click.UsageError("give either --events or --rate with --duration")
    if events is not None:
        return events
    try:
        return steady_events(rate, duration)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--rate' / '--duration'") from None


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
        f"throughput    {summary.events_per_s:,.0f} events/s ({summary.seconds:.2f} s generating and producing"
        + (f", paced at {summary.target_events_per_s:,g} valid events/s)" if summary.target_events_per_s else ")"),
    ])
