"""The closure's proofs, one per FAIL reason (invariant 7): each test breaks exactly one fact of an
otherwise proven run and asserts that exactly that proof fails, with its own reason in plain words.
Pure: the facts are plain values, as ``jobs/closure/facts.py`` reads them from logs and services.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from jobs.closure import proofs
from jobs.closure.facts import Commit, Facts, StreamFacts
from jobs.status import ProductStatus

RUN = "r-proof-1"
AT = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)


def receipt(batch: int, partition: int, start: int, end: int, quarantined: int = 1) -> dict:
    n = end - start
    part = {"partition": partition, "start_offset": start, "end_offset": end, "received": n,
            "admitted": n - quarantined - 1, "duplicates": 1, "quarantined": quarantined}
    return {"run_id": RUN, "batch_id": batch, "partitions": [part], "received": n, "admitted": n - quarantined - 1,
            "duplicates": 1, "quarantined": quarantined, "quarantined_by_reason": {"invalid_json": quarantined}}


def stream(name: str, batches: list[int]) -> StreamFacts:
    return StreamFacts(name=name, checkpoint=f"/cp/{name}", app_id=f"{name}-app", registered=[f"{name}-app"],
                       offsets=batches, commits=batches, receipt_batches=batches, run_batches=batches)


def proven() -> Facts:
    """A run that proves: 2 partitions of 10 records each, 16 admitted, every proof holds."""
    receipts = [receipt(0, 0, 0, 10), receipt(1, 1, 0, 10)]
    basis = {"run_id": RUN, "topic": "t", "cluster_id": "c-1", "topic_id": "id-1", "captured_at": AT,
             "partitions": [{"partition": 0, "start_offset": 0, "end_offset": 10},
                            {"partition": 1, "start_offset": 0, "end_offset": 10}]}
    bus = {"topic": "t", "cluster_id": "c-1", "topic_id": "id-1",
           "partitions": [{"partition": 0, "start_offset": 0, "end_offset": 12},
                          {"partition": 1, "start_offset": 0, "end_offset": 10}]}
    opens, blocks = [f"act-open-{i}" for i in range(3)], ["act-block-1"]
    return Facts(
        run_id=RUN, basis=basis, proof={"caught_up": True}, epoch={"epoch": 1}, bus_now=bus, bus_error=None,
        ingest_receipts=receipts, streams={"ingest": stream("ingest", [0, 1]), "decide": stream("decide", [0]),
                                           "cases": stream("cases", [0])},
        committed={0: 10, 1: 10},
        commits=[Commit("bronze.admitted_events", "/t/admitted", 3, "{}", "WRITE", 16, ["ingest-app"])],
        rewrites=[], admitted={"rows": 16, "distinct": 16, "also_admitted_by_other_runs": 0},
        decisions={"rows": 16, "events": 16, "decided_twice": 0, "missing": 0, "missing_sample": [],
                   "by_outcome": {"APPROVE": 12, "REVIEW": 3, "DECLINE": 1}, "by_reason": {"low_risk": 12}},
        actions={"by_type": {"open_case": 3, "block_card": 1}, "ids": {"open_case": opens, "block_card": blocks}},
        audit={"decisions_missing": 0, "actions_missing": 0, "decisions_without_audit": [], "actions_without_audit": []},
        effects={"cases": dict.fromkeys(opens, 1), "controls": dict.fromkeys(blocks, 1),
                 "ledger": dict.fromkeys(opens + blocks, 1), "error": None},
        products={name: ProductStatus(name, "PASS", 4, "version 4 certified PASS")
                  for name in ("transactions_view", "account_features", "merchant_risk")},
        certifications=[{"product": "transactions_view", "version": 4, "status": "PASS", "evidence_path": "/e/tv.json"}],
        certify_receipts=[{"product": "transactions_view", "status": "PASS", "outputs": [{"version": 4}]}],
        certification_files={"/e/tv.json": {"status": "PASS", "version": 4}},
        migrations={"at_head": True, "head": "V005__observed_at_floor", "problems": []}, migrations_error=None)


def failed(facts: Facts) -> dict[str, str]:
    found: dict[str, str] = {}
    for check in proofs.run_all(facts):
        if not check.ok:
            found[check.name] = f"{found[check.name]} | {check.detail}" if check.name in found else check.detail
    return found


def test_a_proven_run_passes_every_proof():
    checks = proofs.run_all(proven())

    assert [c.name for c in checks if not c.ok] == []
    assert {c.name for c in checks} >= {"basis", "bus_epoch", "retention", "caught_up", "ingest_funnel",
                                        "ingest_ranges", "event_ids_unique", "checkpoint_ingest", "checkpoint_decide",
                                        "decisions", "audit", "effects", "products", "certifications",
                                        "migrations", "append_only_history"}


def with_streams(facts: Facts, name: str, **change) -> Facts:
    return replace(facts, streams={**facts.streams, name: replace(facts.streams[name], **change)})


BROKEN = {
    "admitted but no decisions": (
        lambda f: replace(f, decisions={**f.decisions, "rows": 0, "missing": 16, "missing_sample": ["evt-1"]}),
        "decisions", "admitted 16 events but no decision was made"),
    "a decision missing for one event": (
        lambda f: replace(f, decisions={**f.decisions, "missing": 1, "missing_sample": ["evt-9"]}),
        "decisions", "1 admitted events have no decision (e.g. evt-9)"),
    "an action without audit": (
        lambda f: replace(f, audit={**f.audit, "actions_missing": 1, "actions_without_audit": ["act-block-1"]}),
        "audit", "0 decisions and 1 actions have no audit record"),
    "a review without a case": (
        lambda f: replace(f, effects={**f.effects, "cases": {"act-open-0": 1, "act-open-1": 1}}),
        "effects", "1 open_case actions have no case (e.g. act-open-2)"),
    "a product that failed": (
        lambda f: replace(f, products={**f.products, "merchant_risk": ProductStatus(
            "merchant_risk", "FAIL", 5, "version 5 certified FAIL")}),
        "products", "merchant_risk FAIL (version 5 certified FAIL)"),
    "lag on one partition": (
        lambda f: replace(f, committed={0: 10, 1: 7}), "caught_up", "partition 1 lags by 3"),
    "a missing commits/N": (
        lambda f: with_streams(f, "ingest", commits=[0]), "checkpoint_ingest",
        "batch 1 is planned in offsets/ but not committed"),
    "a gap in offsets/": (
        lambda f: with_streams(f, "ingest", offsets=[0, 2], commits=[0, 2], receipt_batches=[0, 2],
                               run_batches=[0, 2]),
        "checkpoint_ingest", "offsets/ is missing batches [1]"),
    "the topic deleted and recreated": (
        lambda f: replace(f, bus_now={**f.bus_now, "topic_id": "id-2"}), "bus_epoch",
        "topic t was deleted and recreated after the run's basis (topic id id-1 then, id-2 now)"),
    "offsets truncated by retention": (
        lambda f: replace(f, bus_now={**f.bus_now, "partitions": [{"partition": 0, "start_offset": 4, "end_offset": 12},
                                                                 {"partition": 1, "start_offset": 0, "end_offset": 10}]}),
        "retention", "partition 0: offsets 0..3"),
    "a reused app id on a replaced checkpoint": (
        lambda f: with_streams(f, "ingest", offsets=[0], commits=[0]), "checkpoint_ingest",
        "it was replaced while its app id was reused"),
    "migrations not at head": (
        lambda f: replace(f, migrations={"at_head": False, "head": "V005", "problems": ["pending: V005"]}),
        "migrations", "not at the migrations' head: pending: V005"),
    "an append-only history rewritten": (
        lambda f: replace(f, rewrites=["decision.audit version 7: RESTORE removed 2 data files"]),
        "append_only_history", "decision.audit version 7: RESTORE"),
    "a PASS certification written by hand": (
        lambda f: replace(f, certify_receipts=[], certification_files={}), "certifications",
        "transactions_view version 4"),
    "a basis with records but nothing received": (
        lambda f: replace(f, ingest_receipts=[], admitted={"rows": 0, "distinct": 0, "also_admitted_by_other_runs": 0},
                          decisions={**f.decisions, "rows": 0}),
        "ingest_funnel", "the basis held 20 records but the run received none"),
    "an event id admitted by two runs": (
        lambda f: replace(f, admitted={**f.admitted, "also_admitted_by_other_runs": 2}), "event_ids_unique",
        "2 event ids of the run were already admitted by another run"),
    "a bus that cannot be reached": (
        lambda f: replace(f, bus_now=None, bus_error="no Kafka broker runs"), "bus_epoch",
        "could not be reached"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_fact_fails_its_own_proof_with_its_reason(case):
    breaking, name, reason = BROKEN[case]

    found = failed(breaking(proven()))

    assert name in found, found
    assert reason in found[name]
