"""Pure transforms of the batch lane, rerun planning and product states: small inline rows, chispa."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql.types import (
    BooleanType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from checks.gate import newest_pass
from jobs import status
from products import PRODUCTS
from products.model import latest_snapshot
from jobs.rerun import plan
from jobs.build import admitted_schema
from .inputs import CUTOFF, DAY1, admitted_row, label_row, labels_frame


def contract(schema) -> tuple:
    return tuple((f.name, type(f.dataType).__name__) for f in schema.fields)


def transform(name: str, inputs: dict, as_of, run_id: str):
    """The product's own transform, before the build selects its contract (so the test can compare them)."""
    return PRODUCTS[name].transform(inputs, as_of, run_id)


def view_of(spark, rows, run_id="r-1"):
    return transform("transactions_view", {"bronze.admitted_events": spark.createDataFrame(rows, admitted_schema())},
                     CUTOFF, run_id)


def test_transactions_view_takes_the_runs_slice_typed_and_enriched(spark):
    rows = [admitted_row(1, "r-1", amount=1999, currency="EUR", at=DAY1),
            admitted_row(2, "r-1", amount=1999, currency="JPY", channel="card_present", at=DAY1 + timedelta(hours=5)),
            admitted_row(3, "r-other", amount=5)]

    actual = view_of(spark, rows).select("event_id", "amount", "event_hour", "card_not_present", "source_offset", "run_id")

    schema = StructType([StructField("event_id", StringType()), StructField("amount", DecimalType(20, 2)),
                         StructField("event_hour", IntegerType()), StructField("card_not_present", BooleanType()),
                         StructField("source_offset", LongType()), StructField("run_id", StringType(), False)])
    expected = spark.createDataFrame([("evt-0001", Decimal("19.99"), 10, True, 1, "r-1"),
                                      ("evt-0002", Decimal("1999.00"), 15, False, 2, "r-1")], schema)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert contract(view_of(spark, rows).schema) == contract(PRODUCTS["transactions_view"].schema)


def test_account_features_count_windows_up_to_the_cutoff_and_never_after(spark):
    at = lambda **delta: CUTOFF - timedelta(**delta)  # noqa: E731
    rows = [admitted_row(1, "r-1", at=at(hours=2)), admitted_row(2, "r-1", at=at(days=3), merchant="m-2"),
            admitted_row(3, "r-1", at=at(days=20)), admitted_row(4, "r-1", at=at(days=40)),
            admitted_row(5, "r-1", at=CUTOFF + timedelta(hours=1)),
            admitted_row(6, "r-1", account="acct-2", at=at(days=10))]

    features = transform("account_features", {"transactions_view": view_of(spark, rows)}, CUTOFF, "r-f")
    actual = features.select("account_id", "txn_count_1d", "txn_count_7d", "txn_count_30d",
                             "distinct_merchants_30d", "last_event_at", "seconds_since_last_event")

    schema = StructType([StructField("account_id", StringType()), *[StructField(f"txn_count_{d}d", LongType())
                         for d in (1, 7, 30)], StructField("distinct_merchants_30d", LongType()),
                         StructField("last_event_at", TimestampType()), StructField("seconds_since_last_event", LongType())])
    expected = spark.createDataFrame([("acct-1", 1, 2, 3, 2, at(hours=2), 7200),
                                      ("acct-2", 0, 0, 1, 1, at(days=10), 10 * 86_400)], schema)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert contract(features.schema) == contract(PRODUCTS["account_features"].schema)


RISK_SCHEMA = StructType([StructField("merchant_id", StringType()), StructField("txn_count", LongType()),
                          StructField("labelled_count", LongType()), StructField("fraud_count", LongType()),
                          StructField("legitimate_count", LongType()), StructField("fraud_rate", DoubleType())])


@pytest.fixture
def risk_inputs(spark):
    events = [admitted_row(1, "r-1", merchant="m-1", at=DAY1), admitted_row(2, "r-1", merchant="m-1", at=DAY1),
              admitted_row(3, "r-1", merchant="m-2", account="acct-2", at=DAY1)]
    labels = [
        label_row(1, "evt-0001", "fraud", CUTOFF - timedelta(days=1)),
        label_row(2, "evt-0002", "fraud", CUTOFF + timedelta(hours=1)),            # learned after the cut-off
        label_row(3, "evt-0003", "fraud", CUTOFF - timedelta(days=2), account="acct-2"),
        label_row(4, "evt-0003", "legitimate", CUTOFF + timedelta(hours=2), account="acct-2", corrects=3),
        label_row(5, None, "fraud", CUTOFF - timedelta(days=1)),                    # account-level: no merchant
    ]
    return view_of(spark, events), labels_frame(spark, labels)


def risk(spark, view, labels, as_of):
    return merchant_risk(view, labels, as_of).select(*RISK_SCHEMA.fieldNames())


def merchant_risk(view, labels, as_of):
    return transform("merchant_risk", {"transactions_view": view, "labels.label_events": labels}, as_of, "r-1")


def test_merchant_risk_counts_only_labels_recorded_by_the_cutoff(spark, risk_inputs):
    view, labels = risk_inputs

    actual = risk(spark, view, labels, CUTOFF)

    expected = spark.createDataFrame([("m-1", 2, 1, 1, 0, 0.5), ("m-2", 1, 1, 1, 0, 1.0)], RISK_SCHEMA)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_merchant_risk_after_the_late_labels_sees_them_including_the_correction(spark, risk_inputs):
    view, labels = risk_inputs

    actual = risk(spark, view, labels, CUTOFF + timedelta(hours=3))

    expected = spark.createDataFrame([("m-1", 2, 2, 2, 0, 1.0), ("m-2", 1, 1, 0, 1, 0.0)], RISK_SCHEMA)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert contract(merchant_risk(view, labels, CUTOFF).schema) == contract(PRODUCTS["merchant_risk"].schema)


def test_latest_snapshot_keeps_the_newest_cutoff_only(spark):
    schema = "run_id string, as_of timestamp, account_id string"
    snapshots = spark.createDataFrame([("r-1", DAY1, "a"), ("r-2", CUTOFF, "a"), ("r-2", CUTOFF, "b")], schema)

    actual = latest_snapshot(snapshots)

    assert_df_equality(actual, spark.createDataFrame([("r-2", CUTOFF, "a"), ("r-2", CUTOFF, "b")], schema),
                       ignore_row_order=True)


@pytest.mark.parametrize("states, only, expected", [
    ({"transactions_view": "PASS", "account_features": "PASS", "merchant_risk": "PASS"}, None, []),
    ({"transactions_view": "FAIL", "account_features": "ERROR", "merchant_risk": "ERROR"}, None,
     ["transactions_view", "account_features", "merchant_risk"]),
    ({"transactions_view": "FAIL", "account_features": "PASS", "merchant_risk": "PASS"}, None,
     ["transactions_view", "account_features", "merchant_risk"]),
    ({"transactions_view": "PASS", "account_features": "UNCERTIFIED", "merchant_risk": "PASS"}, None,
     ["account_features"]),
    ({"transactions_view": "PASS", "account_features": "PASS", "merchant_risk": "MISSING"}, "account_features", []),
    ({"transactions_view": "FAIL", "account_features": "PASS", "merchant_risk": "FAIL"}, "merchant_risk",
     ["transactions_view", "merchant_risk"]),
])
def test_rerun_plan_is_what_lacks_a_pass_plus_its_dependents(states, only, expected):
    assert plan(states, only) == expected


def test_product_state_follows_the_latest_build_and_its_version():
    built = lambda attempt, version: {"product": "merchant_risk", "step": "build", "attempt": attempt,  # noqa: E731
                                      "status": "BUILT", "reasons": [], "outputs": [{"version": version}]}
    failed = {"product": "merchant_risk", "step": "build", "attempt": 3, "status": "ERROR", "reasons": ["boom"], "outputs": []}
    certified = {"product": "merchant_risk", "step": "certify", "attempt": 1, "status": "PASS", "reasons": [],
                 "outputs": [{"version": 4}]}

    assert status.status_from("merchant_risk", [], []).state == status.MISSING
    assert status.status_from("merchant_risk", [built(1, 4), certified], [(4, "PASS")]).state == status.PASS
    # A PASS verdict whose certify receipt was never written (the certify was killed in between): certify again.
    assert status.status_from("merchant_risk", [built(1, 4)], [(4, "PASS")]).state == status.UNCERTIFIED
    assert status.status_from("merchant_risk", [built(1, 4), built(2, 6)], [(4, "PASS")]).state == status.UNCERTIFIED
    assert status.status_from("merchant_risk", [built(1, 4)], [(4, "PASS"), (4, "FAIL")]).state == status.FAIL
    assert status.status_from("merchant_risk", [built(1, 4), certified, failed], [(4, "PASS")]).detail == \
        "build attempt 3 failed: boom"


def test_gate_version_choice_is_the_newest_pass_never_a_version_with_a_fail():
    assert newest_pass([(1, "PASS"), (2, "FAIL"), (3, "PASS"), (3, "FAIL")]) == 1
    assert newest_pass([(2, "FAIL")]) is None
    assert newest_pass([]) is None
