"""The simulator's plan as it was built before it streamed: everything in memory, sorted at once.

Kept only as the reference the streamed plan must equal record for record (tests/test_simulator.py).
The world and the draft builders are shared; the orchestration and the record builders are the old ones.
"""

from __future__ import annotations

import random
from datetime import timedelta

from common.events import MAX_AMOUNT_MINOR, CardTransaction
from simulator.defects import DEFECTS
from simulator.traffic import ADMITTED, CONFLICT_LAG, DUPLICATE, RETRY_LAG, OutgoingRecord, quarantined, record_counts
from simulator.world import DEFAULT_FRAUD_RATE, World, _fraud_drafts, _habitual_draft, to_event


def reference_events(world: World, count: int, fraud_rate: float = DEFAULT_FRAUD_RATE) -> list[CardTransaction]:
    rng = random.Random(f"ledgerlane-events-{world.seed}")
    fraud = list(_fraud_drafts(rng, world, round(count * fraud_rate)))
    picks = rng.choices(world.accounts, cum_weights=world.activity_cum, k=count - len(fraud))
    normal = [_habitual_draft(rng, world, account) for account in picks]
    drafts = sorted(normal + fraud, key=lambda d: d.at_us)
    return [to_event(f"evt-{world.seed}-{n:08d}", draft) for n, draft in enumerate(drafts)]


def reference_plan(world: World, events: list[CardTransaction], *, duplicate_rate: float, conflict_rate: float,
                   bad_rate: float, seed: int) -> list[OutgoingRecord]:
    n = len(events)
    retries, conflicts, bad = record_counts(n, duplicate_rate, conflict_rate, bad_rate)
    rng = random.Random(f"ledgerlane-traffic-{seed}")
    valid = [_valid(event) for event in events]
    picks = rng.sample(range(n), retries + conflicts)
    placed = [(float(i), record) for i, record in enumerate(valid)]
    placed += [(i + rng.uniform(*RETRY_LAG), _retry(valid[i])) for i in picks[:retries]]
    placed += [(i + rng.uniform(*CONFLICT_LAG), _conflicting(rng, events[i])) for i in picks[retries:]]
    placed += [(rng.uniform(0, n), record) for record in _bad_records(rng, world, events, bad)]
    return [record for _, record in sorted(placed, key=lambda pair: pair[0])]


def _valid(event: CardTransaction) -> OutgoingRecord:
    return OutgoingRecord(event.account_id.encode(), event.to_json().encode(), "valid", ADMITTED, event.event_id)


def _retry(original: OutgoingRecord) -> OutgoingRecord:
    return OutgoingRecord(original.key, original.value, "retry_duplicate", DUPLICATE, original.event_id)


def _conflicting(rng: random.Random, event: CardTransaction) -> OutgoingRecord:
    if rng.random() < 0.7:
        amount = event.amount_minor + rng.randint(1, 999)
        change = {"amount_minor": amount if amount <= MAX_AMOUNT_MINOR else event.amount_minor - 1}
    else:
        change = {"event_time": event.event_time + timedelta(seconds=rng.randint(1, 90))}
    variant = CardTransaction.model_validate({**event.model_dump(), **change})
    return OutgoingRecord(event.account_id.encode(), variant.to_json().encode(), "conflicting_duplicate",
                          quarantined("conflicting_duplicate"), event.event_id)


def _bad_records(rng: random.Random, world: World, events: list[CardTransaction], count: int) -> list[OutgoingRecord]:
    order = list(DEFECTS)
    rng.shuffle(order)
    records = []
    for k in range(count):
        base = events[rng.randrange(len(events))]
        event_id = f"evt-{world.seed}-bad-{k:07d}"
        event = CardTransaction.model_validate({**base.model_dump(), "event_id": event_id})
        other = rng.choice(world.accounts).account_id
        foreign = (other if other != base.account_id else f"{base.account_id}-other").encode()
        defect = order[k % len(order)]
        key, value = defect.apply(event, foreign)
        records.append(OutgoingRecord(key, value, f"bad:{defect.name}", quarantined(defect.expected_reason), event_id))
    return records
