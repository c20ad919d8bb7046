"""Spark validation of single records: every corpus defect gets its reason, valid events none, and
the usual-shape shortcut (one signature lookup instead of a field-by-field diagnosis) changes no verdict,
and nothing but whitespace may follow an event."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pyspark.sql import functions as F

from simulator.defects import DEFECTS, hostile_valid_events
from simulator.world import build_world, generate
from streaming import validate

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
FOREIGN_KEY = b"acc-99-999999"
RAW = "topic string, partition int, offset long, timestamp timestamp, key binary, value binary"


@pytest.fixture(scope="module")
def events():
    return generate(build_world(11, start=START, accounts=30, days=3), 300).events


@pytest.fixture(scope="module")
def records(events):
    """(name, expected reason, key, value, broker time): the valid events, hostile-but-legal ones,
    and every defect applied to the first event, all judged at that event's own time."""
    base = events[0]
    valid = [(f"valid-{i}", None, e.account_id.encode(), e.to_json().encode(), e.event_time)
             for i, e in enumerate([*events, *hostile_valid_events(base)])]
    defects = [(d.name, d.expected_reason, *d.apply(base, FOREIGN_KEY), base.event_time) for d in DEFECTS]
    return valid + defects


def judged(spark, records):
    raw = spark.createDataFrame(
        [("t", 0, i, broker, key, value) for i, (_, _, key, value, broker) in enumerate(records)], RAW)
    rows = validate.parse_and_validate(raw).select("offset", "reason", "reasons").collect()
    return {records[r.offset][0]: (r.reason, list(r.reasons)) for r in rows}


def test_every_record_gets_exactly_its_expected_first_reason(spark, records):
    verdicts = judged(spark, records)

    wrong = {name: (verdicts[name][0], expected) for name, expected, *_ in records if verdicts[name][0] != expected}
    assert wrong == {}


def test_the_usual_shape_shortcut_changes_no_verdict(spark, records, monkeypatch):
    with_shortcut = judged(spark, records)
    monkeypatch.setattr(validate, "VALID_SIGNATURES", ())  # every record now takes the full diagnosis

    assert judged(spark, records) == with_shortcut


def test_valid_events_take_the_shortcut(spark, records):
    """If Spark ever printed signatures differently, verdicts would hold but the speed would not."""
    valid = [(value,) for name, expected, _, value, _ in records if expected is None]
    signatures = spark.createDataFrame(valid, "value binary").select(
        F.schema_of_variant(F.try_parse_json(F.col("value").cast("string"))).alias("s"))

    assert {r.s for r in signatures.collect()} <= set(validate.VALID_SIGNATURES)


def test_valid_signatures_cover_every_optional_field_absent_null_or_typed():
    assert len(validate.VALID_SIGNATURES) == 3 ** len(validate.OPTIONAL_FIELDS)
    assert all(s.startswith("OBJECT<account_id: STRING, amount_minor: BIGINT") for s in validate.VALID_SIGNATURES)


# Text after a valid event that a wrapping parser could take for the end of its own wrapper.
AFTER_THE_EVENT = {
    "closing_bracket": "]", "closing_bracket_then_text": "] garbage", "bracket_then_brace": " ]}",
    "closing_brace": "}", "brace_then_bracket": "}]", "comma_then_member": ',"extra":1',
    "comma_then_element": ",0", "bracket_then_wrapper_sentinel": ',0],[', "second_event_after_bracket": "]{}",
}


def test_nothing_but_whitespace_may_follow_the_event(spark, events):
    base = events[0]
    cases = [(f"after-{name}", "invalid_json", base.account_id.encode(), (base.to_json() + tail).encode(),
              base.event_time) for name, tail in AFTER_THE_EVENT.items()]
    cases += [(f"whitespace-{i}", None, base.account_id.encode(), (base.to_json() + tail).encode(), base.event_time)
              for i, tail in enumerate([" ", "\n", "\t \r\n"])]

    verdicts = judged(spark, cases)

    assert {name: reason for name, (reason, _) in verdicts.items()} == {name: want for name, want, *_ in cases}
