"""The records of the traffic plan: valid events, producer retries, conflicting re-sends and bad records,
each labelled with what it is and what the ingest lane must make of it. Pure and seeded; the plan's
order is ``simulator.stream``'s.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
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


def record_counts(n: int, duplicate_rate: float, conflict_rate: float, bad_rate: float) -> tuple[int, int, int]:
    """Retries, conflicting re-sends and bad records for ``n`` valid events: ``round(rate * n)`` each."""
    for name, rate in (("duplicate_rate", duplicate_rate), ("conflict_rate", conflict_rate), ("bad_rate", bad_rate)):
        if not 0 <= rate <= 1:
            raise ConfigError(f"{name} must be between 0 and 1, found {rate}")
    retries, conflicts = round(n * duplicate_rate), round(n * conflict_rate)
    if retries + conflicts > n:
        raise ConfigError(f"duplicate_rate + conflict_rate must be <= 1, found {duplicate_rate} + {conflict_rate}")
    return retries, conflicts, round(n * bad_rate)


def valid_record(event: CardTransaction) -> OutgoingRecord:
    return OutgoingRecord(event.account_id.encode(), event.to_json().encode(), "valid", ADMITTED, event.event_id)


def retry_record(original: OutgoingRecord) -> OutgoingRecord:
    # A producer retry re-sends the very same bytes under the same key.
    return OutgoingRecord(original.key, original.value, "retry_duplicate", DUPLICATE, original.event_id)


Change = tuple[str, int]   # ("amount", added minor units) or ("time", added seconds)


def draw_change(rng: random.Random) -> Change:
    """What a conflicting re-send changes: mostly the amount, sometimes the event time."""
    if rng.random() < 0.7:
        return "amount", rng.randint(1, 999)
    return "time", rng.randint(1, 90)


def conflicting_record(event: CardTransaction, change: Change) -> OutgoingRecord:
    """Same event_id, different content: a changed amount, or a re-stamped event time."""
    what, by = change
    if what == "amount":
        amount = event.amount_minor + by
        update = {"amount_minor": amount if amount <= MAX_AMOUNT_MINOR else event.amount_minor - 1}
    else:
        update = {"event_time": event.event_time + timedelta(seconds=by)}
    variant = CardTransaction.model_validate({**event.model_dump(), **update})
    return OutgoingRecord(event.account_id.encode(), variant.to_json().encode(), "conflicting_duplicate",
                          quarantined("conflicting_duplicate"), event.event_id)


def defect_order(rng: random.Random) -> list[Defect]:
    """Defects in a seeded order; bad record ``k`` takes ``order[k % len(order)]``, so every defect
    appears once the count reaches the corpus."""
    order = list(DEFECTS)
    rng.shuffle(order)
    return order


def bad_record_id(world: World, k: int) -> str:
    # Fresh ids that no valid event has.
    return f"evt-{world.seed}-bad-{k:07d}"


def bad_record(world: World, k: int, base: CardTransaction, foreign: int, defect: Defect) -> OutgoingRecord:
    """Bad record ``k``: ``base`` under a fresh id, broken by ``defect``; ``foreign`` is the drawn
    index of the account whose key a key defect borrows."""
    event_id = bad_record_id(world, k)
    event = CardTransaction.model_validate({**base.model_dump(), "event_id": event_id})
    key, value = defect.apply(event, foreign_key(world, foreign, base.account_id))
    return OutgoingRecord(key, value, f"bad:{defect.name}", quarantined(defect.expected_reason), event_id)


def foreign_key(world: World, index: int, account_id: str) -> bytes:
    other = world.accounts[index].account_id
    # A one-account world has no other account: invent a well-formed id that is not this one.
    return (other if other != account_id else f"{account_id}-other").encode()


def tally(records: Iterable[OutgoingRecord]) -> dict[str, dict[str, int]]:
    """Counts by kind (all bad records as "bad") and by expected outcome: the plan's own funnel."""
    kinds, expected = Counter(), Counter()
    for record in records:
        kinds[record.kind.split(":", 1)[0]] += 1
        expected[record.expected] += 1
    return {"by_kind": {kind: kinds.get(kind, 0) for kind in KINDS}, "by_expected": dict(sorted(expected.items()))}
