"""The checker: GE adapter and native single pass agree; suites catch broken slices; the read gate."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from chispa import assert_df_equality

from checks import certifications, gate, ge_adapter, native, spec
from checks.results import CheckResult, Verdict
from common import catalog, delta, fs
from common.errors import UncertifiedProductError
from jobs.build import admitted_schema
from products import PRODUCTS

from .inputs import CUTOFF, DAY1, admitted_row, good_events


def broken_view(spark, run_id="r-broken"):
    """Null account, negative amount, and no event on the middle day of a three-day span."""
    rows = [admitted_row(1, run_id, at=DAY1), admitted_row(2, run_id, account=None, at=DAY1),
            admitted_row(3, run_id, amount=-50, at=DAY1 + timedelta(days=2)),
            admitted_row(4, "r-other", at=DAY1)]
    inputs = {"bronze.admitted_events": spark.createDataFrame(rows, admitted_schema())}
    view = PRODUCTS["transactions_view"]
    expected = view.totals(inputs, CUTOFF, run_id).first().asDict()
    return view.build(inputs, CUTOFF, run_id), view.suite(run_id, CUTOFF, expected)


@pytest.fixture(scope="module")
def both_engines(spark):
    view, checks = broken_view(spark)
    return checks, ge_adapter.evaluate(view, checks), native.evaluate(view, checks)


def test_engines_return_our_own_results_in_suite_order(both_engines):
    checks, ge, nat = both_engines

    assert all(isinstance(r, CheckResult) for r in ge + nat)
    assert [r.expectation for r in ge] == [r.expectation for r in nat] == [c.name for c in checks]


def test_engines_agree_on_every_verdict_and_on_what_the_failures_observed(both_engines):
    checks, ge, nat = both_engines

    assert [r.passed for r in ge] == [r.passed for r in nat]
    # GE observes only what failed (BOOLEAN_ONLY first); GE counts every row of a duplicated key, native
    # only the extra ones, so uniqueness observations are not compared.
    failed = [i for i, r in enumerate(ge) if not r.passed and checks[i].kind != "unique"]
    assert failed and [ge[i].observed for i in failed] == [nat[i].observed for i in failed]


def test_ge_with_basic_results_observes_what_native_observes(spark):
    view, checks = broken_view(spark)
    values = [c for c in checks if c.kind in ("row_count", "sum", "distinct_count", "not_null", "between")]

    ge = ge_adapter.evaluate(view, values, result_format=ge_adapter.BASIC)

    assert [(r.passed, r.observed) for r in ge] == [(r.passed, r.observed) for r in native.evaluate(view, values)]


def test_broken_slice_fails_on_null_keys_negative_amounts_and_the_missing_day(both_engines):
    _, ge, _ = both_engines

    failed = {r.expectation: r.observed for r in ge if not r.passed}
    assert failed == {"not_null(account_id)": 1, "between(amount_minor) in [1, 500000000]": 1,
                      "distinct_count(event_date)[run] == 3": 2}


def test_an_expectation_that_raises_fails_closed(spark):
    frame = spark.createDataFrame([(1,)], "n long")

    result = ge_adapter.evaluate(frame, [spec.has_type("missing_column", "LongType")])

    assert result[0].passed is False


# ---- the read gate --------------------------------------------------------------------------------

def certify_as(spark, root, version, status, *, with_result_file: bool = True):
    """A certification row as the certify job records it: with its result file (unless written by hand)."""
    location = catalog.location(root, "silver.transactions_view")
    verdict = Verdict("transactions_view", "r-gate", version, "native",
                      (CheckResult("row_count", status == "PASS", 1),))
    path = f"{root}/../evidence/r-gate/certifications/transactions_view-v{version}-{status}.json"
    if with_result_file:
        fs.write_text(spark, path, json.dumps({**verdict.to_dict(), "location": location}), overwrite=True)
    certifications.record(spark, root, certifications.row(verdict, "silver.transactions_view", location, [],
                                                          path, CUTOFF))


@pytest.fixture
def two_versions(spark, local):
    """Version 0 holds run r-gate-1, version 1 adds run r-gate-2."""
    location = catalog.location(local.tables_root, "silver.transactions_view")
    for run_id, start in (("r-gate-1", 1), ("r-gate-2", 20)):
        admitted = spark.createDataFrame(good_events(run_id, start), admitted_schema())
        frame = PRODUCTS["transactions_view"].build({"bronze.admitted_events": admitted}, CUTOFF, run_id)
        delta.append(frame, location, "silver.transactions_view", run_id, mode="overwrite",
                     replace_where=f"run_id = '{run_id}'")
    return local.tables_root


def runs_in(frame):
    return sorted(r.run_id for r in frame.select("run_id").distinct().collect())


def test_gate_refuses_a_product_without_a_pass_naming_it(spark, two_versions):
    with pytest.raises(UncertifiedProductError, match="data product table silver.transactions_view .*found no certification at all"):
        gate.read_certified(spark, two_versions, "silver.transactions_view")
    certify_as(spark, two_versions, 0, "FAIL")
    with pytest.raises(UncertifiedProductError, match=r"silver.transactions_view .*only FAIL verdicts \(versions 0\)"):
        gate.read_certified(spark, two_versions, "silver.transactions_view")


def test_gate_serves_the_newest_pass_even_when_a_newer_version_is_uncertified_or_failed(spark, two_versions):
    certify_as(spark, two_versions, 0, "PASS")
    uncertified = gate.certified(spark, two_versions, "silver.transactions_view")
    certify_as(spark, two_versions, 1, "FAIL")
    failed = gate.certified(spark, two_versions, "silver.transactions_view")
    certify_as(spark, two_versions, 1, "PASS")     # a PASS next to a FAIL on the same version: still refused
    conflicting = gate.certified(spark, two_versions, "silver.transactions_view")

    assert (uncertified.version, runs_in(uncertified.frame)) == (0, ["r-gate-1"])
    assert (failed.version, runs_in(failed.frame)) == (0, ["r-gate-1"])
    assert (conflicting.version, runs_in(conflicting.frame)) == (0, ["r-gate-1"])


def test_gate_ignores_a_pass_appended_by_hand_without_its_result_file(spark, two_versions):
    certify_as(spark, two_versions, 0, "PASS")
    certify_as(spark, two_versions, 1, "PASS", with_result_file=False)

    assert gate.certified(spark, two_versions, "silver.transactions_view").version == 0


def test_gate_reads_exactly_the_rows_of_the_certified_version(spark, two_versions):
    certify_as(spark, two_versions, 0, "PASS")
    certify_as(spark, two_versions, 1, "PASS")

    actual = gate.read_certified(spark, two_versions, "silver.transactions_view").select("event_id", "run_id")

    expected = spark.createDataFrame([(f"evt-{n:04d}", "r-gate-1") for n in range(1, 7)]
                                     + [(f"evt-{n:04d}", "r-gate-2") for n in range(20, 26)], "event_id string, run_id string")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
