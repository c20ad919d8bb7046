"""The simulator: a deterministic world, a bad-record corpus that fails the contract for the stated reason,
a traffic plan that keeps its rates and streams in bounded memory with the same bytes as the in-memory
plan it replaced, and real production of that plan to the local broker."""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from cli.main import cli
from common.errors import ConfigError, IdentityError
from common.events import (
    MAX_EVENT_AGE,
    MAX_EVENT_LEAD,
    MAX_PAYLOAD_BYTES,
    QUARANTINE_REASONS,
    CardTransaction,
)
from common.identity import is_valid_identity
from simulator.defects import DEFECTS, hostile_valid_events
from simulator.producer import (
    accounts_for,
    ground_truth_file,
    ground_truth_row,
    paced,
    simulate,
    steady_events,
    write_ground_truth,
)
from simulator.stream import Planned, _sample_range, _plan_file, stream_traffic
from simulator.traffic import ADMITTED, DUPLICATE, OutgoingRecord, quarantined, tally
from simulator.world import HOME_COUNTRIES, SCENARIOS, build_world, generate, to_minor
from simulator_reference import reference_events, reference_plan

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
FOREIGN_KEY = b"acc-99-999999"
# Defects the pydantic model cannot see although the value alone reveals them (none left: the
# contract now rejects control characters and matches identities whole-string).
CONTRACT_GAPS: dict[str, str] = {}


@pytest.fixture(scope="module")
def world():
    return build_world(11, start=START, accounts=60, days=7)


@pytest.fixture(scope="module")
def generated(world):
    return generate(world, 3000)


@pytest.fixture(scope="module")
def base_event(generated):
    return generated.events[0]


def _streamed(world, events: int, seed: int, **rates) -> list[Planned]:
    return list(stream_traffic(world, events, seed=seed, folder=Path(tempfile.gettempdir()), **rates))


def _plan(seed: int, events: int = 400, **rates) -> list[OutgoingRecord]:
    world = build_world(seed, start=START, accounts=20)
    rates = {"duplicate_rate": 0.05, "conflict_rate": 0.01, "bad_rate": 0.2, **rates}
    return [p.record for p in _streamed(world, events, seed, **rates)]


def _wire(records) -> list[tuple[bytes | None, bytes | None]]:
    return [(r.key, r.value) for r in records]


def _passes_value_checks(value: bytes | None) -> bool:
    """What the value alone proves: present, small enough, JSON, and accepted by the pydantic contract."""
    if value is None or len(value) > MAX_PAYLOAD_BYTES:
        return False
    try:
        CardTransaction.model_validate_json(value)
    except (ValidationError, IdentityError):
        return False
    return True


# --- the world -------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes():
    assert _wire(_plan(seed=5)) == _wire(_plan(seed=5))


def test_different_seed_gives_different_bytes():
    assert _wire(_plan(seed=5)) != _wire(_plan(seed=6))


def test_start_is_the_only_notion_of_now(world):
    later = build_world(11, start=START + timedelta(days=30), accounts=60, days=7)
    first, shifted = generate(world, 50).events, generate(later, 50).events

    assert [e.event_time + timedelta(days=30) for e in first] == [e.event_time for e in shifted]


def test_every_valid_event_passes_the_contract_unchanged(generated):
    for event in generated.events:
        assert CardTransaction.model_validate_json(event.to_json()) == event


def test_events_are_in_time_order_within_the_window_with_unique_identities(world, generated):
    times = [e.event_time for e in generated.events]
    ids = [e.event_id for e in generated.events]

    assert times == sorted(times)
    assert START <= times[0] and times[-1] < world.end
    assert len(set(ids)) == len(ids) == 3000
    assert all(is_valid_identity(i) and i.startswith("evt-11-") for i in ids)


def test_nights_are_quieter_than_days(world, generated):
    home = {a.account_id: a.home_country for a in world.accounts}
    habitual = [e for e in generated.events if not generated.truth[e.event_id].is_fraud]
    local_hours = Counter((e.event_time.hour + HOME_COUNTRIES[home[e.account_id]]) % 24 for e in habitual)

    night = sum(local_hours[h] for h in (1, 2, 3, 4))
    midday = sum(local_hours[h] for h in (11, 12, 13, 14))
    assert night * 4 < midday


def test_every_fraud_scenario_is_in_the_ground_truth(generated):
    scenarios = Counter(t.scenario for t in generated.truth.values() if t.is_fraud)

    assert set(scenarios) == set(SCENARIOS)
    assert sum(scenarios.values()) == 30   # DEFAULT_FRAUD_RATE of 3000
    assert all(t.scenario is None for t in generated.truth.values() if not t.is_fraud)


def test_card_testing_is_tiny_remote_charges(generated):
    tests = [e for e in generated.events if generated.truth[e.event_id].scenario == "card_testing"]

    assert tests
    assert all(e.channel == "ecommerce" and e.amount_minor <= to_minor(199, e.currency) for e in tests)


def test_compromised_card_bursts_are_remote_and_abroad(world, generated):
    home = {a.account_id: a.home_country for a in world.accounts}
    burst = [e for e in generated.events if generated.truth[e.event_id].scenario == "compromised_card_burst"]

    assert burst
    assert all(e.channel == "ecommerce" and e.country != home[e.account_id] for e in burst)


def test_world_arguments_are_checked():
    with pytest.raises(ConfigError, match="UTC offset"):
        build_world(1, start=datetime(2026, 11, 1))
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        build_world(-1, start=START)


# --- the defect corpus -----------------------------------------------------------------------------


def test_corpus_has_at_least_fifty_uniquely_named_defects():
    names = [d.name for d in DEFECTS]

    assert len(names) >= 50
    assert len(set(names)) == len(names)


def test_every_expected_reason_is_a_quarantine_reason_and_all_are_covered():
    reasons = {d.expected_reason for d in DEFECTS}

    assert reasons <= set(QUARANTINE_REASONS)
    # conflicting_duplicate needs two records; the traffic plan makes those.
    assert reasons == set(QUARANTINE_REASONS) - {"conflicting_duplicate"}


def _value_defects():
    return [
        pytest.param(d, id=d.name, marks=pytest.mark.xfail(strict=True, reason=CONTRACT_GAPS[d.name]))
        if d.name in CONTRACT_GAPS else pytest.param(d, id=d.name)
        for d in DEFECTS if d.judged_by == "value"
    ]


@pytest.mark.parametrize("defect", _value_defects())
def test_defect_fails_the_contract_on_its_value(defect, base_event):
    _, value = defect.apply(base_event, FOREIGN_KEY)

    assert not _passes_value_checks(value)


@pytest.mark.parametrize("defect", [d for d in DEFECTS if d.judged_by == "key"], ids=lambda d: d.name)
def test_key_defects_change_only_the_key(defect, base_event):
    key, value = defect.apply(base_event, FOREIGN_KEY)

    assert value == base_event.to_json().encode()
    assert key != base_event.account_id.encode()


@pytest.mark.parametrize("defect", [d for d in DEFECTS if d.judged_by == "broker_time"], ids=lambda d: d.name)
def test_broker_time_defects_are_out_of_range_for_any_admissible_broker_time(defect, base_event):
    _, value = defect.apply(base_event, FOREIGN_KEY)
    event = CardTransaction.model_validate_json(value)
    # The base event is admissible, so broker time lies in [base - MAX_EVENT_LEAD, base + MAX_EVENT_AGE].
    earliest, latest = base_event.event_time - MAX_EVENT_LEAD, base_event.event_time + MAX_EVENT_AGE

    assert event.event_time > latest + MAX_EVENT_LEAD or event.event_time < earliest - MAX_EVENT_AGE


def test_first_failing_check_wins_in_combined_defects():
    combined = {d.name: d.expected_reason for d in DEFECTS if d.kind == "combined"}

    assert combined["oversized_and_not_json"] == "oversized_payload"
    assert combined["unknown_field_and_missing_amount"] == "unknown_field"
    assert combined["long_name_and_foreign_key"] == "invalid_text"


def test_hostile_but_legal_events_survive_verbatim(base_event):
    hostile = hostile_valid_events(base_event)
    names = {e.merchant_name for e in hostile}

    assert len({e.event_id for e in hostile}) == len(hostile)
    for event in hostile:
        assert CardTransaction.model_validate_json(event.to_json()) == event
    assert "Robert'); DROP TABLE students;--" in names and "Café Zürich — 東京 🍣" in names
    assert max(len(e.to_json().encode()) for e in hostile) == MAX_PAYLOAD_BYTES


# --- the traffic plan ------------------------------------------------------------------------------


def test_plan_keeps_its_rates_and_labels():
    plan = _plan(seed=3, events=2000, duplicate_rate=0.03, conflict_rate=0.005, bad_rate=0.1)
    counts = tally(plan)

    assert counts["by_kind"] == {"valid": 2000, "retry_duplicate": 60, "conflicting_duplicate": 10, "bad": 200}
    assert counts["by_expected"][ADMITTED] == 2000 and counts["by_expected"][DUPLICATE] == 60
    assert counts["by_expected"][quarantined("conflicting_duplicate")] == 10


def test_retries_repeat_the_original_bytes_after_it():
    plan = _plan(seed=4)
    first_seen = {}
    for position, record in enumerate(plan):
        if record.kind == "valid":
            first_seen[(record.key, record.value)] = position
        if record.kind == "retry_duplicate":
            assert first_seen[(record.key, record.value)] < position


def test_conflicting_duplicates_reuse_an_event_id_with_other_content_after_it():
    plan = _plan(seed=4)
    originals = {}
    for record in plan:
        if record.kind == "valid":
            originals[record.event_id] = record
        if record.kind == "conflicting_duplicate":
            original = originals[record.event_id]
            assert record.key == original.key and record.value != original.value
            assert CardTransaction.model_validate_json(record.value).event_id == record.event_id


def test_bad_records_cover_the_corpus_and_never_reuse_a_valid_event_id():
    plan = _plan(seed=8, events=1000, bad_rate=0.5)
    valid_ids = {r.event_id for r in plan if r.kind == "valid"}
    bad = [r for r in plan if r.kind.startswith("bad:")]

    assert {r.kind[4:] for r in bad} == {d.name for d in DEFECTS}
    assert not valid_ids & {r.event_id for r in bad}
    assert all(r.expected == quarantined(next(d for d in DEFECTS if d.name == r.kind[4:]).expected_reason)
               for r in bad[:50])


def test_valid_and_duplicate_records_are_keyed_by_account_id():
    for record in _plan(seed=9):
        if not record.kind.startswith("bad:"):
            assert record.key == json.loads(record.value)["account_id"].encode()


@pytest.mark.parametrize("rates, message", [
    ({"bad_rate": 1.5}, "bad_rate must be between 0 and 1"),
    ({"duplicate_rate": -0.1}, "duplicate_rate must be between 0 and 1"),
    ({"duplicate_rate": 0.9, "conflict_rate": 0.2}, "duplicate_rate \\+ conflict_rate must be <= 1"),
])
def test_rates_out_of_range_are_refused(rates, message):
    with pytest.raises(ConfigError, match=message):
        _plan(seed=1, events=10, **rates)


# --- the streamed plan: same bytes as the in-memory plan, bounded memory ------------------------------

# (seed, events, duplicate_rate, conflict_rate, bad_rate, days, records, sha256 of the records, sha256 of
# the ground truth), recorded from the in-memory planner before the plan streamed. The 3000-event case
# samples its re-sends from a pool (random.sample's other method); the 1-event case has no extras.
RECORDED = [
    (3, 1, 0.01, 0.002, 0.02, 1, 1, "753914f1bcfc517ebec9802e4a2b5269", "a70bc4045465f529eaf49d5c9f7d12cd"),
    (5, 50, 0.05, 0.01, 0.2, 2, 62, "b8a4167526df867915eb68c39d52eb3a", "de735854cc187c413e4648706f273fd8"),
    (7, 2000, 0.01, 0.002, 0.02, 7, 2064, "a55a9916435ab8d154de69b96fd3dd3b", "4053616440e0a638a47c31dd134c77c7"),
    (11, 3000, 0.5, 0.3, 1.0, 3, 8400, "0ac3da6811f200d6b0311c975e2d27f5", "5d7c68b1a952326ddb6668f4e14ad185"),
    (2, 1200, 0.0, 0.0, 0.0, 1, 1200, "b46bdbdff62c1d2f7524e7dcb876d545", "59642a6679232307ee353ecea2391373"),
    (13, 20000, 0.03, 0.005, 0.1, 5, 22700, "d5301638b200b6d81a9d94c992e9b50e", "3566e567ee19f4cbf420a215945d95d5"),
]


def _digests(planned: list[Planned]) -> tuple[str, str]:
    records, truth = hashlib.sha256(), hashlib.sha256()
    for item in planned:
        r = item.record
        records.update(repr((r.key, r.value, r.kind, r.expected, r.event_id)).encode())
        if item.event is not None:
            row = json.dumps(ground_truth_row(item.event, item.truth), sort_keys=True, separators=(",", ":"))
            truth.update((row + "\n").encode())
    return records.hexdigest()[:32], truth.hexdigest()[:32]


@pytest.mark.parametrize("seed, events, dup, conflict, bad, days, records, plan_sha, truth_sha", RECORDED,
                         ids=[f"seed{c[0]}-{c[1]}" for c in RECORDED])
def test_streamed_plan_has_the_recorded_bytes(seed, events, dup, conflict, bad, days, records, plan_sha, truth_sha):
    world = build_world(seed, start=START, accounts=accounts_for(events), days=days)
    planned = _streamed(world, events, seed, duplicate_rate=dup, conflict_rate=conflict, bad_rate=bad)

    assert len(planned) == records
    assert _digests(planned) == (plan_sha, truth_sha)


@pytest.mark.parametrize("seed, events, rates", [
    (21, 700, {"duplicate_rate": 0.02, "conflict_rate": 0.01, "bad_rate": 0.05}),
    (22, 90, {"duplicate_rate": 0.6, "conflict_rate": 0.4, "bad_rate": 0.9}),   # every event re-sent
    (23, 1, {"duplicate_rate": 1.0, "conflict_rate": 0.0, "bad_rate": 1.0}),
])
def test_streamed_plan_equals_the_in_memory_reference_record_for_record(seed, events, rates):
    world = build_world(seed, start=START, accounts=7, days=2)
    reference = reference_plan(world, reference_events(world, events), seed=seed, **rates)
    planned = _streamed(world, events, seed, **rates)

    assert [p.record for p in planned] == reference
    assert [p.event for p in planned if p.event] == list(generate(world, events).events)


@pytest.mark.parametrize("n, k", [(10, 0), (10, 10), (1, 1), (50, 7), (1000, 30), (1000, 900), (300, 299)])
def test_sample_on_disk_draws_what_random_sample_draws(n, k, tmp_path):
    ours, theirs = random.Random(n * 1000 + k), random.Random(n * 1000 + k)
    with _plan_file(tmp_path) as db:
        drawn = list(_sample_range(db, ours, n, k))

    assert drawn == theirs.sample(range(n), k)
    assert ours.random() == theirs.random(), "both generators are at the same point afterwards"


def test_the_plan_scratch_file_is_removed_even_when_the_stream_is_abandoned(tmp_path):
    world = build_world(4, start=START, accounts=20)
    stream = stream_traffic(world, 500, duplicate_rate=0.1, conflict_rate=0.1, bad_rate=0.1, seed=4, folder=tmp_path)
    next(stream)
    assert len(list(tmp_path.glob("plan-*/plan.sqlite"))) == 1

    stream.close()

    assert list(tmp_path.iterdir()) == []


def test_steady_mode_holds_each_valid_event_back_until_its_turn():
    now, slept = [100.0], []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    def item(valid: bool) -> Planned:
        record = OutgoingRecord(b"k", b"v", "valid" if valid else "bad:x", "admitted", "e")
        return Planned(record, object() if valid else None, None)

    items = [item(True), item(False), item(True), item(True), item(False), item(True)]
    assert list(paced(items, rate=4.0, clock=lambda: now[0], sleep=sleep)) == items
    assert slept == [0.25, 0.25, 0.25]   # extras travel with the event before them, unpaced


def test_steady_mode_and_the_bound_name_their_limits():
    assert steady_events(500, 60) == 30_000
    with pytest.raises(ConfigError, match="over the simulator's bound of 100,000,000"):
        steady_events(1_000_000, 101)
    with pytest.raises(ConfigError, match="0 < rate"):
        steady_events(0, 10)


def test_ground_truth_is_replaced_only_by_a_complete_file(tmp_path):
    path = tmp_path / "truth.jsonl"
    path.write_text("previous\n")

    with pytest.raises(RuntimeError):
        with ground_truth_file(path) as truth:
            truth.write({"event_id": "evt-1"})
            raise RuntimeError("the broker went away")

    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["truth.jsonl"]


def test_ground_truth_file_is_deterministic(tmp_path, world, generated):
    path = write_ground_truth(tmp_path / "truth.jsonl", generated)
    first = path.read_bytes()
    write_ground_truth(path, generate(world, 3000))
    rows = [json.loads(line) for line in path.read_text().splitlines()]

    assert path.read_bytes() == first
    assert len(rows) == 3000 and sum(r["is_fraud"] for r in rows) == 30
    assert set(rows[0]) == {"event_id", "account_id", "card_id", "merchant_id", "event_time", "amount_minor",
                            "currency", "is_fraud", "scenario"}


@pytest.mark.parametrize("args, message", [
    (["--bad-rate", "2"], "must be a fraction between 0 and 1, found 2.0"),
    (["--duplicate-rate", "nan"], "must be a fraction between 0 and 1"),
    (["--start", "2026-11-20T00:00:00"], "needs a UTC offset"),
    (["--start", "2001-01-01T00:00:00Z"], "broker time limits"),
])
def test_cli_refuses_bad_parameters_before_touching_kafka(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "simulate", "--events", "10", "--seed", "1", *args])

    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize("args, message", [
    (["--events", "99999999999999999999"], "between 1 and 100,000,000 (the simulator's bound per run), "
                                           "found 99,999,999,999,999,999,999"),
    (["--events", "0"], "between 1 and 100,000,000"),
    (["--rate", "1000000", "--duration", "1000"], "over the simulator's bound of 100,000,000 per run"),
    (["--rate", "500"], "--rate and --duration go together"),
    (["--events", "10", "--rate", "500", "--duration", "2"], "either --events or --rate with --duration"),
    ([], "either --events or --rate with --duration"),
    (["--rate", "0", "--duration", "5"], "0<x<=1000000"),
])
def test_cli_refuses_absurd_sizes_up_front_naming_the_bound(args, message, tmp_path):
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "simulate", "--seed", "1", *args])

    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert time.monotonic() - started < 5 and not (tmp_path / "simulator").exists()


# --- against the real broker -----------------------------------------------------------------------


def _consume_all(bootstrap: str, topic: str) -> tuple[int, list[tuple[bytes | None, bytes | None]]]:
    """Sum of end offsets, and every record from the beginning up to them."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{topic}", "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        end = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records, deadline = [], time.monotonic() + 60
        while len(records) < end and time.monotonic() < deadline:
            records += [(m.key(), m.value()) for m in consumer.consume(1000, timeout=1) if m.error() is None]
        return end, records
    finally:
        consumer.close()


@pytest.mark.slow
def test_simulate_puts_exactly_the_planned_records_on_the_topic(settings, kafka_bootstrap):
    topic = f"sim-test-{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic": topic})})
    rates = {"duplicate_rate": 0.02, "conflict_rate": 0.005, "bad_rate": 0.1}

    summary = simulate(local, events=2000, seed=3, partitions=3, start=START, days=2, **rates)

    world = build_world(3, start=START, accounts=accounts_for(2000), days=2)
    planned = reference_plan(world, reference_events(world, 2000), seed=3, **rates)
    end_offsets, consumed = _consume_all(kafka_bootstrap, topic)
    assert summary.records == len(planned) == end_offsets == 2000 + 40 + 10 + 200
    assert Counter(consumed) == Counter(_wire(planned))
    assert summary.by_kind == {"valid": 2000, "retry_duplicate": 40, "conflicting_duplicate": 10, "bad": 200}
    truth = open(summary.ground_truth, encoding="utf-8").read().splitlines()
    assert len(truth) == 2000 and summary.fraud_events == sum(json.loads(line)["is_fraud"] for line in truth) == 20
    assert summary.partitions == 3 and summary.events_per_s > 0


@pytest.mark.slow
def test_steady_mode_sends_at_the_rate_asked(settings, kafka_bootstrap):
    topic = f"sim-steady-{uuid.uuid4().hex[:8]}"
    local = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic": topic})})

    summary = simulate(local, events=steady_events(400, 2), seed=4, duplicate_rate=0.01, conflict_rate=0,
                       bad_rate=0.01, partitions=2, start=START, days=1, rate=400)

    end_offsets, consumed = _consume_all(kafka_bootstrap, topic)
    assert summary.by_kind["valid"] == 800 and end_offsets == len(consumed) == summary.records == 816
    assert summary.target_events_per_s == 400
    assert 1.9 <= summary.seconds < 10, "799 intervals of 1/400 s at least, not much more"
