"""Send one simulation to Kafka: build the world, plan the traffic, keep the ground truth, produce, measure.

This is the simulator's only I/O: the topic, the ground-truth file and the clock that times production.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from common.config import Settings
from common.endpoints import kafka_bootstrap
from common.events import CardTransaction
from common.kafka_admin import ensure_topic, produce
from simulator.defects import WIRE_TIME
from simulator.traffic import OutgoingRecord, plan_traffic, tally
from simulator.world import DEFAULT_DAYS, DEFAULT_FRAUD_RATE, Generated, build_world, generate

Progress = Callable[[int, int], None]   # (records handed to the producer so far, records planned)


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
    seconds: float                # producing only, from first send to the last acknowledgement
    events_per_s: float           # records per second over ``seconds``

    def to_dict(self) -> dict:
        return asdict(self)


def accounts_for(events: int) -> int:
    # About fifty transactions per cardholder, so per-account features have something to aggregate.
    return max(20, min(50_000, events // 50))


def simulate(settings: Settings, *, events: int, seed: int, duplicate_rate: float, conflict_rate: float,
             bad_rate: float, partitions: int | None, start: datetime, progress: Progress | None = None,
             days: int = DEFAULT_DAYS, fraud_rate: float = DEFAULT_FRAUD_RATE) -> SimulationSummary:
    """Produce ``events`` valid events plus retries, conflicts and bad records to ``settings.kafka.topic``."""
    world = build_world(seed, start=start, accounts=accounts_for(events), days=days)
    generated = generate(world, events, fraud_rate=fraud_rate)
    plan = plan_traffic(world, generated.events, duplicate_rate=duplicate_rate, conflict_rate=conflict_rate,
                        bad_rate=bad_rate, seed=seed)
    topic, partition_count = settings.kafka.topic, partitions or settings.kafka.partitions
    truth = write_ground_truth(ground_truth_path(settings.home, topic, seed), generated)
    seconds = _send(kafka_bootstrap(settings), topic, partition_count, plan, progress)
    counts = tally(plan)
    return SimulationSummary(
        topic=topic, partitions=partition_count, seed=seed, start=start.isoformat(), end=world.end.isoformat(),
        records=len(plan), by_kind=counts["by_kind"], by_expected=counts["by_expected"],
        fraud_events=sum(t.is_fraud for t in generated.truth.values()), ground_truth=str(truth),
        seconds=round(seconds, 3), events_per_s=round(len(plan) / seconds, 1) if seconds > 0 else 0.0,
    )


def _send(bootstrap: str, topic: str, partitions: int, plan: Sequence[OutgoingRecord],
          progress: Progress | None) -> float:
    ensure_topic(bootstrap, topic, partitions)
    report = (lambda sent: progress(sent, len(plan))) if progress else None
    began = time.perf_counter()
    produce(bootstrap, topic, ((r.key, r.value) for r in plan), progress=report)
    return time.perf_counter() - began


def ground_truth_path(home: Path, topic: str, seed: int) -> Path:
    return Path(home) / "simulator" / f"ground_truth-{topic}-{seed}.jsonl"


def ground_truth_rows(generated: Generated) -> list[dict]:
    """One row per valid event, in event order: the labels a fraud model would be judged against."""
    rows = []
    for event in generated.events:
        truth = generated.truth[event.event_id]
        rows.append({
            "event_id": event.event_id, "account_id": event.account_id, "card_id": event.card_id,
            "merchant_id": event.merchant_id, "event_time": _wire_time(event), "amount_minor": event.amount_minor,
            "currency": event.currency, "is_fraud": truth.is_fraud, "scenario": truth.scenario,
        })
    return rows


def _wire_time(event: CardTransaction) -> str:
    # The same event_time text the bus carries (CardTransaction.to_json).
    return event.event_time.astimezone(timezone.utc).strftime(WIRE_TIME)


def write_ground_truth(path: Path, generated: Generated) -> Path:
    """Overwrite ``path`` atomically: a reader sees the previous file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for row in ground_truth_rows(generated):
            out.write(json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n")
    os.replace(partial, path)
    return path
