"""Point-in-time labels in Spark: each event sees only labels recorded at or before its own cut-off."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality

from common.labels_pit import labels_as_of, latest_labels_as_of

EVENTS = "event_id string, account_id string, cutoff_at timestamp"
LABELS = "label_event_id long, account_id string, event_id string, label string, recorded_at timestamp"
OUT = EVENTS + ", label string, label_event_id long, label_recorded_at timestamp"


def t(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, 1, hour, minute, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def label_events(spark):
    return spark.createDataFrame([
        (1, "acct-1", None, "suspicious", t(2)),
        (2, "acct-1", None, "fraud", t(4)),
        (3, "acct-1", None, "legitimate", t(4)),   # same instant as #2: the later id wins
        (4, "acct-2", "ev-9", "fraud", t(6)),      # learned after every acct-2 cut-off below
    ], LABELS)


def test_each_event_gets_the_label_known_at_its_own_cutoff(spark, label_events):
    events = spark.createDataFrame([
        ("ev-1", "acct-1", t(1)),        # before any label
        ("ev-2", "acct-1", t(2)),        # exactly when #1 was recorded: known
        ("ev-3", "acct-1", t(3, 59)),    # #1 only; #2/#3 not yet
        ("ev-4", "acct-1", t(9)),        # the tie at 04:00 resolved by label_event_id
        ("ev-5", "acct-2", t(5)),        # acct-2's label is recorded later: no leakage
        ("ev-6", "acct-3", t(9)),        # no labels for this account at all
        ("ev-7", None, t(9)),            # no key: nothing can be known
        ("ev-8", "acct-1", None),        # no cut-off: fail closed, nothing known
    ], EVENTS)

    expected = spark.createDataFrame([
        ("ev-1", "acct-1", t(1), None, None, None),
        ("ev-2", "acct-1", t(2), "suspicious", 1, t(2)),
        ("ev-3", "acct-1", t(3, 59), "suspicious", 1, t(2)),
        ("ev-4", "acct-1", t(9), "legitimate", 3, t(4)),
        ("ev-5", "acct-2", t(5), None, None, None),
        ("ev-6", "acct-3", t(9), None, None, None),
        ("ev-7", None, t(9), None, None, None),
        ("ev-8", "acct-1", None, None, None, None),
    ], OUT)

    assert_df_equality(labels_as_of(events, label_events), expected, ignore_row_order=True, ignore_nullable=True)


def test_event_level_keys_match_labels_on_the_event_id(spark, label_events):
    events = spark.createDataFrame([("ev-9", "acct-2", t(7)), ("ev-9", "acct-2", t(5))], EVENTS)

    expected = spark.createDataFrame([
        ("ev-9", "acct-2", t(7), "fraud", 4, t(6)),
        ("ev-9", "acct-2", t(5), None, None, None),
    ], OUT)

    actual = labels_as_of(events, label_events, keys=("account_id", "event_id"))
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_plan_has_no_python_udf(spark, label_events):
    events = spark.createDataFrame([("ev-1", "acct-1", t(1))], EVENTS)

    plan = labels_as_of(events, label_events)._jdf.queryExecution().executedPlan().toString()

    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan


def test_missing_columns_are_named(spark, label_events):
    events = spark.createDataFrame([("ev-1", "acct-1")], "event_id string, account_id string")

    with pytest.raises(ValueError, match=r"events lacks columns \['cutoff_at'\]"):
        labels_as_of(events, label_events)


def test_latest_labels_as_of_one_instant_per_subject(spark, label_events):
    expected = spark.createDataFrame([(1, "acct-1", None, "suspicious", t(2))], LABELS)

    assert_df_equality(latest_labels_as_of(label_events, t(3)), expected, ignore_row_order=True)
    assert latest_labels_as_of(label_events, t(9)).count() == 2
