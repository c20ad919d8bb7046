"""The batch lane end to end on real Delta tables: build, certify, gate, receipts, targeted reruns.

Invariants 5 (no PASS, no read) and 6 (run identity) of DESIGN.md, and idempotent rebuilds (2).
"""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from checks import certifications, gate
from common import catalog, delta, fs
from cli.main import main as cli_main
from common.errors import IdempotencyConflict, LedgerlaneError, UncertifiedProductError
from products import NAMES, product
from jobs import build, certify, receipts, rerun, submit
from jobs.batch_context import BatchContext

from .inputs import CUTOFF, DAY1, admitted_row, good_events, label_row, write_admitted, write_labels, scratch_settings

pytestmark = pytest.mark.slow
ALL = list(NAMES)
GE = "great_expectations"


def versions(spark, root) -> dict[str, int | None]:
    paths = {name: catalog.location(root, product(name).table.name) for name in NAMES}
    return {name: delta.latest_version(spark, path) if DeltaTable.isDeltaTable(spark, path) else None
            for name, path in paths.items()}


def refused(action) -> str:
    with pytest.raises(UncertifiedProductError) as caught:
        action()
    return str(caught.value)


# ---- a broken input: FAIL, refusals, receipts that say why, then a fix and a targeted rerun ----------

BROKEN = "r-broken-1"


def broken_rows() -> list[dict]:
    """Day 1 has a row without an account, day 3 a negative amount, day 2 is missing altogether."""
    return [admitted_row(1, BROKEN, at=DAY1), admitted_row(2, BROKEN, account=None, at=DAY1 + timedelta(hours=1)),
            admitted_row(3, BROKEN, amount=-50, at=DAY1 + timedelta(days=2)),
            admitted_row(4, BROKEN, account="acct-2", at=DAY1 + timedelta(days=2, hours=1))]


def fix_input(spark, root: str) -> None:
    """An operator's repair: lift the append-only guard, drop the bad rows, load corrected and missing ones."""
    path = catalog.location(root, "bronze.admitted_events")
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.appendOnly' = 'false')")
    DeltaTable.forPath(spark, path).delete("event_id IN ('evt-0002', 'evt-0003')")
    write_admitted(spark, root, [admitted_row(2, BROKEN, account="acct-2", at=DAY1 + timedelta(hours=1)),
                                 admitted_row(3, BROKEN, amount=50, at=DAY1 + timedelta(days=2)),
                                 admitted_row(5, BROKEN, at=DAY1 + timedelta(days=1))])


@pytest.fixture(scope="module")
def broken(spark, tmp_path_factory):
    local, config = scratch_settings(tmp_path_factory.mktemp("broken"))
    ctx, root = BatchContext.from_settings(local), local.tables_root
    write_admitted(spark, root, broken_rows())
    seen = SimpleNamespace(local=local, config=config, root=root)
    seen.built = build.build(spark, ctx, "transactions_view", BROKEN, cutoff=CUTOFF)
    # This run goes through Great Expectations end to end (the default engine is native).
    seen.certified = certify.certify(spark, ctx, "transactions_view", BROKEN, engine=GE)
    seen.gate_error = refused(lambda: gate.read_certified(spark, local.tables_root, "silver.transactions_view"))
    seen.dependent_errors = {name: refused(lambda name=name: build.build(spark, ctx, name, BROKEN))
                             for name in ("account_features", "merchant_risk")}
    seen.receipts_before_fix = receipts.for_run(spark, root, BROKEN)
    fix_input(spark, root)
    seen.versions_before = versions(spark, root)
    seen.dry_run = rerun.rerun(spark, ctx, BROKEN, dry_run=True, engine=GE)
    seen.versions_after_dry_run = versions(spark, root)
    seen.rerun = rerun.rerun(spark, ctx, BROKEN, engine=GE)
    seen.receipts = receipts.for_run(spark, root, BROKEN)
    return seen


def test_broken_input_is_certified_fail_naming_each_defect(spark, broken):
    expected_reasons = ["not_null(account_id): observed 1", "between(amount_minor) in [1, 500000000]: observed 1",
                        "distinct_count(event_date)[run] == 3: observed 2"]
    version = broken.built["outputs"][0]["version"]
    evidence = json.loads(fs.read_text(spark, broken.certified["evidence_path"]))
    recorded = certifications.read(spark, broken.root).where(f"run_id = '{BROKEN}' AND version = {version}").first()

    assert (broken.certified["status"], broken.certified["reasons"]) == ("FAIL", expected_reasons)
    assert broken.certified["evidence_path"].endswith(f"/{BROKEN}/certifications/transactions_view-v{version}.json")
    assert (evidence["status"], evidence["version"], evidence["failures"]) == ("FAIL", version, expected_reasons)
    assert evidence["expected"] == {"rows": 4, "amount_minor": 2950, "days": 3}
    assert (recorded.product, recorded.status, recorded.failures) == ("transactions_view", "FAIL", expected_reasons)
    assert recorded.location == catalog.location(broken.root, "silver.transactions_view")
    assert len(recorded.expectations) == len(evidence["results"]) > 30


def test_gate_refuses_the_failed_product_and_dependents_refuse_to_build(broken):
    assert "data product table silver.transactions_view" in broken.gate_error and "only FAIL" in broken.gate_error
    for name, error in broken.dependent_errors.items():
        assert f"data product 'transactions_view' of run {BROKEN} must be certified PASS" in error, name
        assert "found FAIL" in error


def test_receipts_say_why_each_step_failed(broken):
    by_step = {(r["product"], r["step"]): r for r in broken.receipts_before_fix}

    assert by_step[("transactions_view", "build")]["status"] == "BUILT"
    certified = by_step[("transactions_view", "certify")]
    assert (certified["status"], certified["checker"], certified["checker_result"]) == ("FAIL", "great_expectations", "FAIL")
    assert certified["reasons"] == broken.certified["reasons"]
    for name in ("account_features", "merchant_risk"):
        receipt = by_step[(name, "build")]
        assert receipt["status"] == "ERROR" and receipt["outputs"] == []
        assert receipt["reasons"] == [broken.dependent_errors[name]]


def test_dry_run_plans_every_product_and_moves_nothing(broken):
    states = {name: s["state"] for name, s in broken.dry_run["before"].items()}

    assert states == {"transactions_view": "FAIL", "account_features": "ERROR", "merchant_risk": "ERROR"}
    assert broken.dry_run["plan"] == ALL and broken.dry_run["outcomes"] == {}
    assert broken.versions_after_dry_run == broken.versions_before


def test_targeted_rerun_after_the_fix_certifies_every_product(spark, broken):
    assert broken.rerun["plan"] == ALL and broken.rerun["ok"] is True
    assert {name: o["state"] for name, o in broken.rerun["outcomes"].items()} == dict.fromkeys(ALL, "PASS")

    view = gate.read_certified(spark, broken.local.tables_root, "silver.transactions_view").select("event_id", "account_id", "amount_minor")
    expected = spark.createDataFrame(
        [("evt-0001", "acct-1", 1000), ("evt-0002", "acct-2", 1000), ("evt-0003", "acct-1", 50),
         ("evt-0004", "acct-2", 1000), ("evt-0005", "acct-1", 1000)], "event_id string, account_id string, amount_minor long")
    assert_df_equality(view, expected, ignore_row_order=True, ignore_nullable=True)
    assert gate.read_certified(spark, broken.local.tables_root, "gold.account_features").count() == 2


def test_receipts_record_inputs_outputs_attempts_and_code(broken):
    builds = [r for r in broken.receipts if r["product"] == "transactions_view" and r["step"] == "build"]
    first, second = sorted(builds, key=lambda r: r["attempt"])

    assert [first["attempt"], second["attempt"]] == [1, 2]
    assert [i["version"] for i in first["inputs"]] == [0] and second["inputs"][0]["version"] > 0
    assert second["inputs"][0]["name"] == "bronze.admitted_events"
    assert (first["outputs"][0]["rows"], second["outputs"][0]["rows"]) == (4, 5)
    assert second["outputs"][0]["files"] >= 1 and second["outputs"][0]["version"] > first["outputs"][0]["version"]
    assert receipts.as_utc(second["cutoff"]) == CUTOFF
    assert second["code_version"] and second["config_digest"] == broken.local.digest()
    assert second["seconds"] >= 0 and second["finished_at"] >= second["started_at"]
    features = [r for r in broken.receipts if r["product"] == "account_features" and r["status"] == "BUILT"][0]
    assert features["inputs"] == [{"name": "silver.transactions_view", "version": second["outputs"][0]["version"],
                                   "location": second["outputs"][0]["location"]}]


def test_every_product_commit_carries_the_run_id(spark, broken):
    for name in NAMES:
        stamps = delta.history(spark, catalog.location(broken.root, product(name).table.name)).select("userMetadata").collect()
        assert {json.loads(s.userMetadata)["run_id"] for s in stamps} == {BROKEN}, name


# ---- a settled run: certified products stay untouched by a rerun -----------------------------------

SETTLED = "r-settled-1"


@pytest.fixture(scope="module")
def settled(spark, tmp_path_factory):
    local, config = scratch_settings(tmp_path_factory.mktemp("settled"))
    # The cut-off comes from a fixed clock: the events are on fixed dates, and a wall-clock cut-off more
    # than 30 days after them leaves account_features empty (this fixture broke on 2026-12-03 that way).
    ctx, root = BatchContext.from_settings(local, clock=lambda: CUTOFF), local.tables_root
    write_admitted(spark, root, good_events(SETTLED))
    write_labels(spark, root, [label_row(1, "evt-0001", "fraud", DAY1 + timedelta(days=1))])
    seen = SimpleNamespace(local=local, config=config, root=root, ctx=ctx)
    with pytest.MonkeyPatch.context() as patch:
        seen.receipt_reads = counting_receipt_reads(patch)
        seen.first = rerun.rerun(spark, ctx, SETTLED, engine="native", product=None)
    seen.rebuilt = build.build(spark, ctx, "account_features", SETTLED)     # rebuilt, never certified
    seen.served_while_uncertified = gate.certified(spark, local.tables_root, "gold.account_features").version
    seen.versions_before = versions(spark, root)
    seen.second = rerun.rerun(spark, ctx, SETTLED, engine="native")
    seen.versions_after = versions(spark, root)
    return seen


def counting_receipt_reads(patch) -> list[str]:
    """Every read of ``meta.job_receipts`` from now on, by run id."""
    reads, read = [], receipts.for_run

    def counted(spark, tables_root, run_id):
        reads.append(run_id)
        return read(spark, tables_root, run_id)

    patch.setattr(receipts, "for_run", counted)
    return reads


def test_a_rerun_reads_the_runs_receipts_once_and_keeps_them_current(settled):
    # Three builds and three certifications, each of which needs the run's receipts, from one read.
    assert settled.receipt_reads == [SETTLED]
    assert [o["build_attempt"] for o in settled.first["outcomes"].values()] == [1, 1, 1]


def test_receipts_in_hand_equal_the_receipts_read_back(spark, settled):
    stored = receipts.for_run(spark, settled.root, SETTLED)
    rebuilt = [r for r in stored if (r["product"], r["step"], r["attempt"]) == ("account_features", "build", 2)]

    assert rebuilt == [receipts.as_read(settled.rebuilt)]
    assert [r["attempt"] for r in stored if r["step"] == "certify" and r["product"] == "account_features"] == [1, 2]


def test_a_fresh_run_is_built_and_certified_in_dependency_order(settled):
    assert [s["state"] for s in settled.first["before"].values()] == ["MISSING"] * 3
    assert settled.first["plan"] == ALL
    assert [o["state"] for o in settled.first["outcomes"].values()] == ["PASS"] * 3


def test_gate_serves_the_certified_version_while_a_newer_build_is_uncertified(settled):
    certified_version = settled.first["outcomes"]["account_features"]["version"]

    assert settled.served_while_uncertified == certified_version
    assert settled.rebuilt["outputs"][0]["version"] > certified_version


def test_rerun_rebuilds_only_what_lacks_a_pass_and_leaves_certified_versions_alone(settled):
    assert settled.second["plan"] == ["account_features"]
    assert settled.second["outcomes"]["account_features"]["state"] == "PASS"
    for name in ("transactions_view", "merchant_risk"):
        assert settled.versions_after[name] == settled.versions_before[name], name
    assert settled.versions_after["account_features"] > settled.versions_before["account_features"]


def test_rebuilding_replaces_the_runs_slice_and_never_duplicates_it(spark, settled):
    features = gate.read_certified(spark, settled.local.tables_root, "gold.account_features")
    attempts = [r["attempt"] for r in receipts.for_run(spark, settled.root, SETTLED)
                if r["product"] == "account_features" and r["step"] == "build"]

    assert attempts == [1, 2, 3]
    assert features.count() == features.select("run_id", "account_id").distinct().count() == 2


def test_a_run_keeps_one_cutoff(spark, settled):
    with pytest.raises(IdempotencyConflict, match=f"run {SETTLED} was built with cut-off .* differs"):
        build.build(spark, settled.ctx, "merchant_risk", SETTLED, cutoff=CUTOFF + timedelta(days=1))


def test_a_run_that_admitted_nothing_is_refused_and_writes_nothing(spark, local):
    write_admitted(spark, local.tables_root, [admitted_row(1, "r-other", at=DAY1)])

    with pytest.raises(LedgerlaneError, match="transactions_view: run r-empty produced no rows"):
        build.build(spark, BatchContext.from_settings(local), "transactions_view", "r-empty", cutoff=CUTOFF)

    assert versions(spark, local.tables_root)["transactions_view"] is None
    assert [r["status"] for r in receipts.for_run(spark, local.tables_root, "r-empty")] == [receipts.ERROR]


def test_certify_without_a_build_names_the_missing_step(spark, settled):
    with pytest.raises(UncertifiedProductError, match="'merchant_risk' of run r-never-built cannot be certified"):
        certify.certify(spark, settled.ctx, "merchant_risk", "r-never-built")


def test_cli_and_spark_submit_entrypoints(settled, capsys):
    home = ["--home", str(settled.local.home), "--config", str(settled.config)]

    code = cli_main([*home, "rerun", "--run-id", SETTLED, "--dry-run", "--json"])
    planned = json.loads(capsys.readouterr().out)
    certify_code = cli_main([*home, "job", "certify", "merchant_risk", "--run-id", SETTLED, "--engine", "native"])
    certified = capsys.readouterr().out
    submit_code = submit.main(["rerun", "--run-id", SETTLED, "--dry-run", *home])
    described = capsys.readouterr().out

    assert (code, planned["plan"], planned["ok"]) == (0, [], True)
    assert certify_code == 0 and "certified PASS by native" in certified
    assert submit_code == 0 and "merchant_risk: PASS [untouched]" in described


def test_native_is_the_default_engine_and_great_expectations_one_flag_away(spark, settled, capsys):
    home = ["--home", str(settled.local.home), "--config", str(settled.config)]

    default_code = cli_main([*home, "job", "certify", "transactions_view", "--run-id", SETTLED])
    by_default = capsys.readouterr().out
    ge_code = certify.JOB.main(["transactions_view", "--run-id", SETTLED, "--engine", GE, *home])
    by_ge = capsys.readouterr().out
    recorded = [(r["checker"], r["status"]) for r in receipts.for_run(spark, settled.root, SETTLED)
                if r["product"] == "transactions_view" and r["step"] == "certify"]

    assert certify.DEFAULT_ENGINE == "native" and set(certify.ENGINES) == {"native", GE}
    assert default_code == 0 and "certified PASS by native" in by_default
    assert ge_code == 0 and f"certified PASS by {GE}" in by_ge
    assert recorded[-2:] == [("native", "PASS"), (GE, "PASS")]


def test_cutoff_defaults_to_the_run_basis_time_else_the_injected_clock(spark, local):
    from common import basis as run_basis

    snapshot = {"topic": "t", "cluster_id": "c", "topic_id": "i", "partitions": []}
    basis = run_basis.ensure_basis(spark, catalog.location(local.tables_root, "meta.run_basis"), "r-based",
                                   lambda: snapshot)
    ctx = BatchContext.from_settings(local, clock=lambda: CUTOFF)

    assert build.resolve_cutoff(spark, ctx, "r-based", None, []) == receipts.as_utc(basis["captured_at"])
    assert build.resolve_cutoff(spark, ctx, "r-no-basis", None, []) == CUTOFF
    assert build.resolve_cutoff(spark, ctx, "r-based", CUTOFF, [{"cutoff": CUTOFF}]) == CUTOFF
