"""The traffic plan: valid events interleaved with producer retries, conflicting re-sends and bad records,
each record labelled with what it is and what the ingest lane must make of it. Pure and seeded.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from common.errors import ConfigError
from common.events import MAX_AMOUNT_MINOR, CardTransaction
from simulator.defects import DEFECTS, Defect
from simulator.world import World

ADMITTED = "admitted"
DUPLICATE = "duplicate"
KINDS = ("valid", "retry_duplicate", "conflicting_duplicate", "bad")
# How far behind its original a re-send lands, in records: retries come soon, conflicting re-sends later.
RETRY_LAG = (1.0, 500.0)
CONFLICT_LAG = (1.0, 2000.0)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    key: bytes | None
    value: bytes | None
    kind: str        # valid | retry_duplicate | conflicting_duplicate | bad:<defect name>
    expected: str    # admitted | duplicate | quarantined:<reason>
    event_id: str    # the event it carries (bad records get fresh ids that no valid event has)


def quarantined(reason: str) -> str:
    return f"quarantined:{reason}"


def plan_traffic(world: World, events: Sequence[CardTransaction], *, duplicate_rate: float,
                 conflict_rate: float, bad_rate: float, seed: int) -> list[OutgoingRecord]:
    """All of ``events`` once, in order, plus ``round(rate * len(events))`` retries, conflicting re-sends
    and bad records at seeded positions. Rates are per valid event; every record is keyed by account_id.
    """
    n = len(events)
    retries, conflicts, bad = _counts(n, duplicate_rate, conflict_rate, bad_rate)
    rng = random.Random(f"ledgerlane-traffic-{seed}")
    valid = [_valid(event) for event in events]
    picks = rng.sample(range(n), retries + conflicts)
    placed = [(float(i), record) for i, record in enumerate(valid)]
    placed += [(i + rng.uniform(*RETRY_LAG), _retry(valid[i])) for i in picks[:retries]]
    placed += [(i + rng.uniform(*CONFLICT_LAG), _conflicting(rng, events[i])) for i in picks[retries:]]
    placed += [(rng.uniform(0, n), record) for record in _bad_records(rng, world, events, bad)]
    # Ties keep insertion order, so a re-send never overtakes its original.
    return [record for _, record in sorted(placed, key=lambda pair: pair[0])]


def _counts(n: int, duplicate_rate: float, conflict_rate: float, bad_rate: float) -> tuple[int, int, int]:
    for name, rate in (("duplicate_rate", duplicate_rate), ("conflict_rate", conflict_rate), ("bad_rate", bad_rate)):
        if not 0 <= rate <= 1:
            raise ConfigError(f"{name} must be between 0 and 1, found {rate}")
    retries, conflicts = round(n * duplicate_rate), round(n * conflict_rate)
    if retries + conflicts > n:
        raise ConfigError(f"duplicate_rate + conflict_rate must be <= 1, found {duplicate_rate} + {conflict_rate}")
    return retries, conflicts, round(n * bad_rate)


def _valid(event: CardTransaction) -> OutgoingRecord:
    return OutgoingRecord(event.account_id.encode(), event.to_json().encode(), "valid", ADMITTED, event.event_id)


def _retry(original: OutgoingRecord) -> OutgoingRecord:
    # A producer retry re-sends the very same bytes under the same key.
    return OutgoingRecord(original.key, original.value, "retry_duplicate", DUPLICATE, original.event_id)


def _conflicting(rng: random.Random, event: CardTransaction) -> OutgoingRecord:
    """Same event_id, different content: a changed amount, or a re-stamped event time."""
    if rng.random() < 0.7:
        amount = event.amount_minor + rng.randint(1, 999)
        change = {"amount_minor": amount if amount <= MAX_AMOUNT_MINOR else event.amount_minor - 1}
    else:
        change = {"event_time": event.event_time + timedelta(seconds=rng.randint(1, 90))}
    variant = CardTransaction.model_validate({**event.model_dump(), **change})
    return OutgoingRecord(event.account_id.encode(), variant.to_json().encode(), "conflicting_duplicate",
                          quarantined("conflicting_duplicate"), event.event_id)


def _bad_records(rng: random.Random, world: World, events: Sequence[CardTransaction],
                 count: int) -> list[OutgoingRecord]:
    """Defects taken in a seeded order, cycling, so every defect appears once ``count`` >= the corpus."""
    order = list(DEFECTS)
    rng.shuffle(order)
    return [_bad(rng, world, events, k, order[k % len(order)]) for k in range(count)]


def _bad(rng: random.Random, world: World, events: Sequence[CardTransaction], k: int,
         defect: Defect) -> OutgoingRecord:
    base = events[rng.randrange(len(events))]
    event_id = f"evt-{world.seed}-bad-{k:07d}"
    event = CardTransaction.model_validate({**base.model_dump(), "event_id": event_id})
    key, value = defect.apply(event, _foreign_key(rng, world, base.account_id))
    return OutgoingRecord(key, value, f"bad:{defect.name}", quarantined(defect.expected_reason), event_id)


def _foreign_key(rng: random.Random, world: World, account_id: str) -> bytes:
    other = rng.choice(world.accounts).account_id
    # A one-account world has no other account: invent a well-formed id that is not this one.
    return (other if other != account_id else f"{account_id}-other").encode()


def tally(records: Sequence[OutgoingRecord]) -> dict[str, dict[str, int]]:
    """Counts by kind (all bad records as "bad") and by expected outcome: the plan's own funnel."""
    kinds = Counter(r.kind.split(":", 1)[0] for r in records)
    return {
        "by_kind": {kind: kinds.get(kind, 0) for kind in KINDS},
        "by_expected": dict(sorted(Counter(r.expected for r in records).items())),
    }
