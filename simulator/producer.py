"""Send one simulation to Kafka: build the world, stream the traffic plan, keep the ground truth, produce,
measure. Memory stays flat at any size: records are generated as they are sent (``simulator.stream``).

This is the simulator's only I/O: the topic, the ground-truth file, the plan's scratch file and the
clock that times (and, in steady mode, paces) production.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from common.config import Settings
from common.endpoints import kafka_bootstrap
from common.errors import ConfigError
from common.events import CardTransaction
from common.kafka_admin import ensure_topic, produce
from simulator.defects import WIRE_TIME
from simulator.stream import Planned, stream_traffic
from simulator.traffic import KINDS, record_counts
from simulator.world import DEFAULT_DAYS, DEFAULT_FRAUD_RATE, Generated, Truth, build_world

Progress = Callable[[int, int], None]   # (records handed to the producer so far, records planned)
# One run's bound. At the simulator's ~20k records/s this is well over an hour of producing; more
# is a typing slip, and a plan that size would also fill the broker's disk.
MAX_EVENTS = 100_000_000
MAX_RATE = 1_000_000.0


@dataclass(frozen=True)
class SimulationSummary:
    topic: str
    partitions: int
    seed: int
    start: str
    end: str
    records: int
    by_kind: dict[str, int]       # valid, retry_duplicate, conflicting_duplicate, bad
    by_expected: dict[str, int]   # admitted, duplicate, quarantined:<reason>
    fraud_events: int
    ground_truth: str
    seconds: float                # generating and producing (interleaved), to the last acknowledgement
    events_per_s: float           # records per second over ``seconds``
    target_events_per_s: float | None = None   # steady mode: the pace asked for, in valid events per second

    def to_dict(self) -> dict:
        return asdict(self)


def accounts_for(events: int) -> int:
    # About fifty transactions per cardholder, so per-account features have something to aggregate.
    return max(20, min(50_000, events // 50))


def assert_events_within_bound(events: int) -> int:
    if not 0 <= events <= MAX_EVENTS:
        raise ConfigError(f"the simulator sends between 0 and {MAX_EVENTS:,} valid events per run "
                          f"(its bound), found {events:,}; send more in several runs")
    return events


def steady_events(rate: float, duration_s: int) -> int:
    """Valid events for a steady run of ``rate`` events/s over ``duration_s`` seconds, within the bound."""
    if not (0 < rate <= MAX_RATE) or duration_s < 1:
        raise ConfigError(f"steady mode needs 0 < rate <= {MAX_RATE:,.0f} events/s and a duration >= 1 s, "
                          f"found {rate} events/s for {duration_s} s")
    events = round(rate * duration_s)
    if events > MAX_EVENTS:
        raise ConfigError(f"{rate:,} events/s for {duration_s:,} s is {events:,} events, over the simulator's "
                          f"bound of {MAX_EVENTS:,} per run; shorten the duration or lower the rate")
    return events


def simulate(settings: Settings, *, events: int, seed: int, duplicate_rate: float, conflict_rate: float,
             bad_rate: float, partitions: int | None, start: datetime, progress: Progress | None = None,
             days: int = DEFAULT_DAYS, fraud_rate: float = DEFAULT_FRAUD_RATE,
             rate: float | None = None) -> SimulationSummary:
    """Produce ``events`` valid events plus retries, conflicts and bad records to ``settings.kafka.topic``.

    With ``rate``, valid events leave at that many per second (steady mode), extras alongside.
    """
    assert_events_within_bound(events)
    world = build_world(seed, start=start, accounts=accounts_for(events), days=days)
    planned_total = events + sum(record_counts(events, duplicate_rate, conflict_rate, bad_rate))
    topic, partition_count = settings.kafka.topic, partitions or settings.kafka.partitions
    funnel = Funnel()
    with ground_truth_file(ground_truth_path(settings.home, topic, seed)) as truth:
        plan = stream_traffic(world, events, duplicate_rate=duplicate_rate, conflict_rate=conflict_rate,
                              bad_rate=bad_rate, seed=seed, fraud_rate=fraud_rate,
                              folder=Path(settings.home) / "simulator")
        observed = funnel.observe(truth.record(plan))
        seconds = _send(kafka_bootstrap(settings), topic, partition_count,
                        paced(observed, rate) if rate else observed, planned_total, progress)
    counts = funnel.counts()
    return SimulationSummary(
        topic=topic, partitions=partition_count, seed=seed, start=start.isoformat(), end=world.end.isoformat(),
        records=funnel.records, by_kind=counts["by_kind"], by_expected=counts["by_expected"],
        fraud_events=funnel.fraud_events, ground_truth=str(truth.path), seconds=round(seconds, 3),
        events_per_s=round(funnel.records / seconds, 1) if seconds > 0 else 0.0, target_events_per_s=rate,
    )


class Funnel:
    """Counts by kind and by expected outcome, kept as the records stream past: the plan's own funnel."""

    def __init__(self) -> None:
        self.kinds: Counter = Counter()
        self.expected: Counter = Counter()
        self.fraud_events = 0

    @property
    def records(self) -> int:
        return sum(self.kinds.values())

    def observe(self, planned: Iterable[Planned]) -> Iterator[Planned]:
        for item in planned:
            self.kinds[item.record.kind.split(":", 1)[0]] += 1
            self.expected[item.record.expected] += 1
            self.fraud_events += bool(item.truth and item.truth.is_fraud)
            yield item

    def counts(self) -> dict[str, dict[str, int]]:
        return {"by_kind": {kind: self.kinds.get(kind, 0) for kind in KINDS},
                "by_expected": dict(sorted(self.expected.items()))}


def paced(planned: Iterable[Planned], rate: float, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[Planned]:
    """Hold each valid event back until its turn: the n-th leaves ``n / rate`` seconds after the first."""
    began, sent = None, 0
    for item in planned:
        if item.event is not None:
            began = clock() if began is None else began
            delay = began + sent / rate - clock()
            if delay > 0:
                sleep(delay)
            sent += 1
        yield item


def _send(bootstrap: str, topic: str, partitions: int, planned: Iterable[Planned], total: int,
          progress: Progress | None) -> float:
    ensure_topic(bootstrap, topic, partitions)
    report = (lambda sent: progress(sent, total)) if progress else None
    began = time.perf_counter()
    produce(bootstrap, topic, ((p.record.key, p.record.value) for p in planned), progress=report)
    return time.perf_counter() - began


def ground_truth_path(home: Path, topic: str, seed: int) -> Path:
    return Path(home) / "simulator" / f"ground_truth-{topic}-{seed}.jsonl"


def ground_truth_row(event: CardTransaction, truth: Truth) -> dict:
    """The label a fraud model would be judged against, for one valid event."""
    return {
        "event_id": event.event_id, "account_id": event.account_id, "card_id": event.card_id,
        "merchant_id": event.merchant_id, "event_time": _wire_time(event), "amount_minor": event.amount_minor,
        "currency": event.currency, "is_fraud": truth.is_fraud, "scenario": truth.scenario,
    }


def ground_truth_rows(generated: Generated) -> list[dict]:
    """One row per valid event, in event order."""
    return [ground_truth_row(event, generated.truth[event.event_id]) for event in generated.events]


def _wire_time(event: CardTransaction) -> str:
    # The same event_time text the bus carries (CardTransaction.to_json).
    return event.event_time.astimezone(timezone.utc).strftime(WIRE_TIME)


class GroundTruth:
    """Rows written as the valid events stream past, to a partial file that replaces the old one only
    when the whole simulation was sent."""

    def __init__(self, path: Path, out: TextIO):
        self.path, self.out = path, out

    def write(self, row: dict) -> None:
        self.out.write(json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n")

    def record(self, planned: Iterable[Planned]) -> Iterator[Planned]:
        for item in planned:
            if item.event is not None:
                self.write(ground_truth_row(item.event, item.truth))
            yield item


@contextmanager
def ground_truth_file(path: Path) -> Iterator[GroundTruth]:
    """A reader sees the previous file or the complete new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            yield GroundTruth(path, out)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_ground_truth(path: Path, generated: Generated) -> Path:
    """Overwrite ``path`` atomically with the ground truth of ``generated``."""
    with ground_truth_file(path) as truth:
        for row in ground_truth_rows(generated):
            truth.write(row)
    return path
