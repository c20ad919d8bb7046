"""The closure end to end, on one real run (real Kafka, real PostgreSQL, real Delta tables): PASS with a
bundle that verifies after teardown, one verdict under racing closers, nothing written where the folder
is unwritable, no secret in any bundle file, and FAILs read from the real logs and checkpoints.
Invariants 7, 8 and 9 of DESIGN.md. (One proof per FAIL reason, purely: tests/test_closure_proofs.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from common import catalog, delta
from common.bundle_store import LocalStore
from common.config import load_settings
from common.errors import ClosureFailed, LockHeld
from common.evidence import COMPLETE, EVIDENCE_FILE, FAILED, Evidence, sha256_of
from helpers import PASSWORD_ENV, cli, unique
from human_loop import label_import, migrate
from human_loop.connection import connect
from jobs import closure, run
from jobs.closure import facts as gathering
from jobs.closure import verify
from simulator.producer import simulate

pytestmark = pytest.mark.slow
RUN = "r-close-1"
SECRETS = {"AWS_SECRET_ACCESS_KEY": "planted-aws-secret-9f3c1e", "LEDGERLANE_TEST_TOKEN": "planted-token-7d2a44"}


def run_config(root: Path, db: dict, bootstrap: str, topic: str) -> Path:
    os.environ[PASSWORD_ENV] = db["password"]
    path = root / "run.toml"
    path.write_text(
        f'env = "closetest"\n[storage]\ntables_root = "{root}/tables"\ncheckpoints_root = "{root}/checkpoints"\n'
        f'evidence_root = "{root}/evidence"\n[spark]\nshuffle_partitions = 2\n'
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ntopic = "{topic}"\npartitions = 2\n'
        f'max_offsets_per_trigger = 400\n'
        f'[postgres]\nhost = "{db["host"]}"\nport = {db["port"]}\ndatabase = "{db["dbname"]}"\n'
        f'user = "{db["user"]}"\npassword_env = "{PASSWORD_ENV}"\n', encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def closed(spark, kafka_bootstrap, new_database, tmp_path_factory):
    root = tmp_path_factory.mktemp("closure")
    db = new_database()
    config = run_config(root, db, kafka_bootstrap, unique("close"))
    settings = load_settings(path=config, home=root)
    migrate.migrate(db, run_id=RUN)
    sent = simulate(settings, events=400, seed=41, duplicate_rate=0.02, conflict_rate=0.005, bad_rate=0.03,
                    partitions=2, start=datetime.now(timezone.utc) - timedelta(days=5), days=4)
    feed = root / "chargebacks.jsonl"   # chargebacks known before the run: merchant risk has labels to use
    label_import.write_jsonl(label_import.chargebacks_from_ground_truth(label_import.read_jsonl(Path(sent.ground_truth))),
                             feed)
    with connect(db) as conn:
        label_import.import_labels(conn, label_import.read_feed(feed))
    for name, value in SECRETS.items():
        os.environ[name] = value
    summary = run.run(spark, settings, RUN)
    return SimpleNamespace(settings=settings, config=config, root=root, db=db, summary=summary, sent=sent,
                           store=LocalStore(settings.evidence_root))


def bundle_files(store: LocalStore, run_id: str) -> list[Path]:
    return [p for p in (Path(store.root) / run_id).rglob("*") if p.is_file()]


def test_a_complete_run_closes_pass_with_a_bundle_that_hashes(closed):
    close = closed.summary["steps"]["close"]
    evidence = Evidence.model_validate_json(closed.store.read(f"{RUN}/{EVIDENCE_FILE}"))
    marker = closed.store.read(f"{RUN}/{COMPLETE}").decode().split()[0]

    assert closed.summary["verdict"] == "PASS", close["reasons"]
    assert marker == sha256_of(closed.store.read(f"{RUN}/{EVIDENCE_FILE}"))
    assert not closed.store.exists(f"{RUN}/{FAILED}")
    assert evidence.funnel.received == closed.sent.records
    assert evidence.funnel.decided == evidence.funnel.admitted > 0
    assert {c.role for c in evidence.copied} >= {"delta_log", "checkpoint", "certification", "openlineage"}
    assert all(c.ok for c in evidence.checks)


def test_the_report_says_the_verdict_and_the_funnel(closed):
    html = closed.store.read(f"{RUN}/report.html").decode()
    evidence = Evidence.model_validate_json(closed.store.read(f"{RUN}/{EVIDENCE_FILE}"))

    assert "id='verdict'>PASS<" in html and "<script" not in html and "http://" not in html
    assert f"<td class=''>{evidence.funnel.received}</td>" in html


def test_closing_a_pass_run_again_verifies_and_rewrites_nothing(spark, closed):
    before = {p: p.read_bytes() for p in bundle_files(closed.store, RUN)}

    again = closure.close(spark, closed.settings, RUN)

    assert (again["verdict"], again["rewritten"], again["verified"]) == ("PASS", False, True)
    assert {p: p.read_bytes() for p in bundle_files(closed.store, RUN)} == before


def test_evidence_verifies_after_the_services_checkpoints_and_tables_are_gone(closed, tmp_path):
    kept = tmp_path / "kept-evidence"
    shutil.copytree(Path(closed.settings.evidence_root) / RUN, kept / RUN)
    gone = closed.settings.model_copy(update={"storage": closed.settings.storage.model_copy(update={
        "evidence_root": str(kept), "tables_root": str(tmp_path / "no-tables"),
        "checkpoints_root": str(tmp_path / "no-checkpoints")})})

    intact = verify.verify(None, gone, RUN)
    copy = next(p for p in (kept / RUN / "copies" / "delta_log").rglob("*.json"))
    copy.write_text(copy.read_text().replace("WRITE", "DELETE"))
    tampered = verify.verify(None, gone, RUN)

    assert intact["verified"] and intact["verdict"] == "PASS"
    assert not tampered["verified"] and any("was changed after closure" in r for r in tampered["reasons"])


def test_evidence_verify_through_the_cli(closed):
    code, out, err = cli("--config", str(closed.config), "--home", str(closed.root), "evidence", "verify",
                         "--run-id", RUN, "--json")

    assert code == 0, err
    assert json.loads(out)["verified"] is True


def test_no_secret_reaches_any_bundle_file(closed):
    secrets = [closed.db["password"], *SECRETS.values()]
    files = bundle_files(closed.store, RUN)

    assert len(files) > 20
    for path in files:
        text = path.read_bytes()
        assert not [s for s in secrets if s.encode() in text], path


def scratch(closed, tmp_path) -> object:
    """The same run's facts, bundled into another evidence folder: the real bundle stays untouched."""
    return closed.settings.model_copy(update={"storage": closed.settings.storage.model_copy(update={
        "evidence_root": str(tmp_path / "evidence")})})


def test_two_closers_racing_leave_exactly_one_verdict(spark, closed, tmp_path):
    settings, results = scratch(closed, tmp_path), []

    def closer() -> None:
        try:
            results.append(closure.close(spark, settings, RUN)["verdict"])
        except LockHeld as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=closer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    markers = [p.name for p in (tmp_path / "evidence" / RUN).iterdir() if p.name in (COMPLETE, FAILED)]
    assert markers == [COMPLETE]
    assert "PASS" in results and len(results) == 2
    other = [r for r in results if r != "PASS"]
    assert other == [] or "is being closed by pid" in other[0]


def test_an_unwritable_evidence_folder_is_a_failure_with_no_marker(spark, closed, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the evidence folder should be")
    settings = closed.settings.model_copy(update={"storage": closed.settings.storage.model_copy(update={
        "evidence_root": str(blocker / "evidence")})})

    with pytest.raises(ClosureFailed, match="could not be written"):
        closure.close(spark, settings, RUN)
    assert not (blocker.parent / "evidence").exists()


def test_a_missing_commit_file_fails_the_closure_reading_the_real_checkpoint(spark, closed, tmp_path):
    checkpoint = Path(closed.settings.checkpoints_root) / "decide"
    last = sorted(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())[-1]
    moved = tmp_path / "commit-aside"
    shutil.move(checkpoint / "commits" / str(last), moved)
    try:
        summary = closure.close(spark, scratch(closed, tmp_path), RUN)
    finally:
        shutil.move(moved, checkpoint / "commits" / str(last))

    assert summary["verdict"] == "FAIL"
    assert any(f"batch {last} is planned in offsets/ but not committed" in r for r in summary["reasons"])
    assert (tmp_path / "evidence" / RUN / FAILED).exists() and not (tmp_path / "evidence" / RUN / COMPLETE).exists()


def test_a_restore_of_an_append_only_table_is_read_from_its_log(spark, closed, tmp_path):
    settings = closed.settings.model_copy(update={"storage": closed.settings.storage.model_copy(update={
        "tables_root": str(tmp_path / "tables")})})
    path = catalog.location(settings.tables_root, "decision.audit")
    for n in range(2):
        row = [(f"aud-{n}", "decision", RUN, "decide-x", n)]
        delta.append(spark.createDataFrame(row, "audit_id string, kind string, run_id string, app_id string, "
                                                "batch_id long"), path, "decision.audit", RUN)
    DeltaTable.forPath(spark, path).restoreToVersion(0)   # Delta allows it: only the log can tell

    found, read_through = gathering.history_rewrites(spark, settings)
    after_it, _ = gathering.history_rewrites(spark, settings, since={"decision.audit": 2})

    assert found == ["decision.audit version 2: RESTORE removed 1 data files"]
    assert read_through == {"decision.audit": 2} and after_it == [], "only commits after a watermark are read"


def test_the_row_facts_find_every_gap_in_real_tables(spark, closed, tmp_path):
    """Decisions, actions, audit and the ledger read from real Delta tables: each gap is counted, by
    anti-joins in Spark, and reaches the proofs with an example (the 10x-scale closure reads no id lists)."""
    settings = closed.settings.model_copy(update={"storage": closed.settings.storage.model_copy(update={
        "tables_root": str(tmp_path / "tables")})})
    write = lambda table, rows, schema: spark.createDataFrame(rows, schema).write.format("delta").save(  # noqa: E731
        catalog.location(settings.tables_root, table))
    write("bronze.admitted_events", [("e1", RUN), ("e2", RUN), ("e3", RUN), ("x1", "r-other")],
          "event_id string, run_id string")
    write("decision.decisions", [("d1", "e1", RUN, "REVIEW", ["velocity"]), ("d2", "e2", RUN, "DECLINE", ["score"]),
                                 ("d2b", "e2", RUN, "APPROVE", []), ("dx", "x1", "r-other", "APPROVE", [])],
          "decision_id string, event_id string, event_run_id string, outcome string, reasons array<string>")
    write("decision.actions", [("a1", "d1", "open_case"), ("a2", "d2", "block_card"), ("ax", "dx", "open_case")],
          "action_id string, decision_id string, action_type string")
    write("decision.audit", [("decision", "d1"), ("action", "a1"), ("decision", "dx")], "kind string, subject_id string")
    write("decision.action_ledger", [("a1", "open_case"), ("a1", "open_case")], "action_id string, action_type string")

    admitted, admitted_ids = gathering.admitted_facts(spark, settings, RUN)
    decisions, decision_ids = gathering.decision_facts(spark, settings, RUN, admitted_ids)
    actions, action_frame = gathering.action_facts(spark, settings, decision_ids)
    audit = gathering.audit_facts(spark, settings, decision_ids, action_frame)
    effects = gathering.effect_facts(spark, settings, actions, action_frame)

    assert admitted["rows"] == 3
    assert (decisions["rows"], decisions["events"], decisions["decided_twice"]) == (3, 2, 1)
    assert (decisions["missing"], decisions["missing_sample"]) == (1, ["e3"])
    assert actions["ids"] == {"open_case": ["a1"], "block_card": ["a2"]}, "the other run's action is not the run's"
    assert audit == {"decisions_without_audit": ["d2", "d2b"], "decisions_missing": 2,
                     "actions_without_audit": ["a2"], "actions_missing": 1}
    assert effects["ledger"] == {"a1": 2} and effects["cases"] == {} and effects["controls"] == {}
    facts = SimpleNamespace(actions=actions, effects=effects, decisions=decisions, audit=audit)
    assert "no audit record" in closure.proofs.audit(facts).detail
    reasons = closure.proofs.effects(facts)[0].detail
    assert "1 open_case actions have no case" in reasons and "not exactly once in the action ledger" in reasons


def test_a_certification_appended_by_hand_is_not_a_proof(spark, closed, tmp_path):
    from checks import certifications
    from checks.results import CheckResult, Verdict

    settings = closed.settings.model_copy(update={"storage": closed.settings.storage.model_copy(update={
        "tables_root": str(tmp_path / "tables")})})
    location = catalog.location(settings.tables_root, "gold.merchant_risk")
    forged = Verdict("merchant_risk", RUN, 9, "native", (CheckResult("row_count", True, 1),))
    certifications.record(spark, settings.tables_root, certifications.row(forged, "gold.merchant_risk", location, [],
                                                                          "", datetime.now(timezone.utc)))

    rows, certify, files = gathering.certification_facts(spark, settings, RUN)
    facts = SimpleNamespace(certifications=rows, certify_receipts=certify, certification_files=files)

    check = closure.proofs.certifications_backed(facts)
    assert not check.ok and "merchant_risk version 9" in check.detail
    assert spark.read.format("delta").load(catalog.location(settings.tables_root, "meta.certifications")) \
        .where(F.col("status") == "PASS").count() == 1


def test_replay_from_the_anchors_rederives_the_run_identically(closed, tmp_path):
    into = tmp_path / "replay"

    code, out, err = cli("--config", str(closed.config), "--home", str(closed.root), "replay", "--run-id", RUN,
                         "--into", str(into), "--json")

    assert code == 0, err
    summary = json.loads(out)
    assert summary["identical"] is True, summary["compared"]
    assert summary["compared"]["admitted"]["replayed"] == summary["compared"]["admitted"]["original"] > 0
    assert summary["compared"]["decisions"]["replayed"] > 0
    assert json.loads((into / "replay.json").read_text())["identical"] is True


def test_replay_refuses_a_folder_that_is_not_empty(closed, tmp_path):
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "precious.txt").write_text("keep me")

    code, _, err = cli("--config", str(closed.config), "--home", str(closed.root), "replay", "--run-id", RUN,
                       "--into", str(tmp_path / "occupied"))

    assert code == 2 and "is not empty" in err
    assert (tmp_path / "occupied" / "precious.txt").read_text() == "keep me"


def test_openlineage_events_name_each_job_its_dataset_versions_and_assertions(closed):
    events = [json.loads(path.read_text()) for path in sorted((Path(closed.store.root) / RUN / "openlineage").glob("*.json"))]
    seen = {(event["job"]["name"], event["eventType"]) for event in events}
    build = next(e for e in events if e["job"]["name"] == "build" and e["eventType"] == "COMPLETE")
    features = {o["name"]: o for o in build["outputs"]}["gold.account_features"]["facets"]

    assert {("ingest", "START"), ("ingest", "COMPLETE"), ("decide", "COMPLETE"), ("closure", "COMPLETE")} <= seen
    assert features["version"]["datasetVersion"].isdigit()
    assert features["dataQualityAssertions"]["assertions"] and all(
        a["success"] for a in features["dataQualityAssertions"]["assertions"])
    assert len({e["run"]["runId"] for e in events if e["job"]["name"] == "ingest"}) == 1
