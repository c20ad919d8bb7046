"""The decision lane: the policy as pure transforms, and the decide and case streams against real Delta
tables and the real PostgreSQL, killed with SIGKILL between every durable write and its commit.
Invariants 1 (no ack before write), 2 (idempotent, no double act), 3 (append-only audit), 4 (explicit
identity), 5 (no PASS, no read) and 6 (run identity) of DESIGN.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from batch.inputs import CUTOFF, DAY1, admitted_row, good_events, label_row, write_admitted, write_labels
from common import catalog, tables
from common.config import DecisionConfig
from common.errors import IdentityError, StateDrift, UncertifiedProductError
from helpers import PASSWORD_ENV, cli, table_state
from jobs import build, rerun
from jobs.batch_context import BatchContext
from streaming import checkpoint as ckpt
from streaming import policy

REPO = Path(__file__).resolve().parent.parent
RUN = "r-decide-1"
POLICY = """
[decision]
policy_version = "policy-test-1"
review_score = 0.1
decline_score = 0.5
high_amount_minor = 150000
max_files_per_trigger = 1
[decision.weights]
high_amount = 0.6
card_not_present = 0.15
"""


# ---- the policy, pure ------------------------------------------------------------------------------

EVENTS = ("event_id string, account_id string, card_id string, merchant_id string, event_time timestamp, "
          "amount_minor long, currency string, channel string, country string, run_id string")
FEATURES = ("account_id string, as_of timestamp, run_id string, txn_count_1d long, txn_count_7d long, "
            "txn_count_30d long, distinct_countries_30d long, card_not_present_share_30d double")
MERCHANTS = "merchant_id string, as_of timestamp, run_id string, fraud_rate double"


def event(n: int, account: str, amount: int, channel: str, country: str = "DE") -> tuple:
    return (f"evt-{n}", account, "card-1", "m-1", DAY1, amount, "EUR", channel, country, "r-in")


def test_the_policy_decides_each_event_once_with_reasons_and_never_approves_without_features(spark):
    rules = DecisionConfig.model_validate({"policy_version": "p-unit-1", "review_score": 0.1, "decline_score": 0.5,
                                           "high_amount_minor": 150_000,
                                           "weights": {"high_amount": 0.6, "card_not_present": 0.15,
                                                       "risky_country": 0.2}})
    events = spark.createDataFrame([
        event(1, "acct-1", 500, "card_present"),       # nothing fires
        event(2, "acct-1", 500, "ecommerce"),          # 0.15
        event(3, "acct-1", 200_000, "ecommerce"),      # 0.75
        event(4, "acct-new", 500, "card_present"),     # no features: never approved
        event(5, "acct-new", 200_000, "card_present", "NG"),
    ], EVENTS)
    features = spark.createDataFrame([("acct-1", CUTOFF, "r-f", 1, 2, 3, 1, 0.5)], FEATURES)
    merchants = spark.createDataFrame([("m-1", CUTOFF, "r-f", 0.0)], MERCHANTS)

    decided = policy.decide(events, features, merchants, rules).select("event_id", "outcome", "score", "reasons")

    expected = spark.createDataFrame([
        ("evt-1", "APPROVE", 0.0, ["low_risk"]),
        ("evt-2", "REVIEW", 0.15, ["card_not_present"]),
        ("evt-3", "DECLINE", 0.75, ["high_amount", "card_not_present"]),
        ("evt-4", "REVIEW", 0.0, ["no_certified_features"]),
        ("evt-5", "DECLINE", 0.8, ["no_certified_features", "high_amount", "risky_country"]),
    ], "event_id string, outcome string, score double, reasons array<string>")
    assert_df_equality(decided, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_tiny_card_not_present_payment_is_reviewed_as_card_testing_and_a_tiny_one_in_a_shop_is_not(spark):
    rules = DecisionConfig(policy_version="p-unit-micro", micro_amount_minor=300)
    events = spark.createDataFrame([event(1, "acct-1", 299, "ecommerce"), event(2, "acct-1", 300, "ecommerce"),
                                    event(3, "acct-1", 120, "contactless"), event(4, "acct-1", 150, "moto")], EVENTS)
    features = spark.createDataFrame([("acct-1", CUTOFF, "r-f", 1, 2, 3, 1, 0.5)], FEATURES)

    decided = {r.event_id: (r.outcome, list(r.reasons)) for r in policy.decide(
        events, features, spark.createDataFrame([], MERCHANTS), rules).collect()}

    assert decided == {"evt-1": ("REVIEW", ["card_not_present", "micro_card_not_present"]),
                       "evt-2": ("APPROVE", ["card_not_present"]), "evt-3": ("APPROVE", ["low_risk"]),
                       "evt-4": ("REVIEW", ["card_not_present", "micro_card_not_present"])}


def test_ids_are_derived_and_every_decision_and_action_is_audited(spark):
    rules = DecisionConfig.model_validate({"policy_version": "p-unit-2", "review_score": 0.1, "decline_score": 0.5,
                                           "high_amount_minor": 150_000,
                                           "weights": {"high_amount": 0.6, "card_not_present": 0.15}})
    events = spark.createDataFrame([event(1, "acct-1", 500, "ecommerce"), event(2, "acct-1", 900_000, "moto"),
                                    event(3, "acct-1", 10, "card_present")], EVENTS)
    features = spark.createDataFrame([("acct-1", CUTOFF, "r-f", 1, 2, 3, 1, 0.5)], FEATURES)
    merchants = spark.createDataFrame([], MERCHANTS)

    decisions = policy.decide(events, features, merchants, rules)
    again = policy.decide(events, features, merchants, rules)
    acts = policy.actions(decisions)
    audit = policy.audit(decisions, acts)

    assert sorted(r.decision_id for r in decisions.collect()) == sorted(r.decision_id for r in again.collect())
    assert {r.action_type: r.event_id for r in acts.collect()} == {"open_case": "evt-1", "block_card": "evt-2"}
    assert audit.count() == 5 and audit.select("audit_id").distinct().count() == 5
    assert {r.kind for r in audit.collect()} == {"decision", "action"}


def test_only_the_first_batch_may_use_the_gate_answer_read_as_the_run_started(monkeypatch):
    """A run until caught up hands the gate's answer to its first batch (read just before it); every
    later batch, and any batch without that answer, reads the gate itself."""
    from streaming import decide

    asked = []
    monkeypatch.setattr(decide.gate, "certified_all", lambda spark, root, tables: asked.append(tables) or ["read"])
    identity = SimpleNamespace(app_id="decide-x", checkpoint="/nowhere")
    paths = decide.DecideTables.from_root("/nowhere")
    writer = decide.DecideBatchWriter(paths, "/nowhere", "r-1", identity, DecisionConfig(), {}, ["at start"])

    assert [writer._certified_features(None) for _ in range(3)] == [["at start"], ["read"], ["read"]]
    assert len(asked) == 2
    fresh = decide.DecideBatchWriter(paths, "/nowhere", "r-1", identity, DecisionConfig(), {})
    assert fresh._certified_features(None) == ["read"] and len(asked) == 3


def test_one_policy_version_with_other_rules_is_refused_by_the_model_check():
    with pytest.raises(ValueError, match="review_score .* must be below decline_score"):
        DecisionConfig.model_validate({"review_score": 0.8, "decline_score": 0.5})
    assert DecisionConfig().digest() != DecisionConfig(review_score=0.41).digest()


# ---- the streams, against real tables and the real database --------------------------------------

def lane_config(root: Path, db: dict, *, policy_text: str = POLICY) -> Path:
    os.environ[PASSWORD_ENV] = db["password"]
    path = root / "decide.toml"
    path.write_text(
        f'env = "decidetest"\n[storage]\ntables_root = "{root}/tables"\ncheckpoints_root = "{root}/checkpoints"\n'
        f'evidence_root = "{root}/evidence"\n[spark]\nshuffle_partitions = 2\n'
        f'[postgres]\nhost = "{db["host"]}"\nport = {db["port"]}\ndatabase = "{db["dbname"]}"\n'
        f'user = "{db["user"]}"\npassword_env = "{PASSWORD_ENV}"\n' + policy_text, encoding="utf-8")
    return path


def certified_lane(spark, root: Path, db: dict, run_id: str = RUN):
    """Admitted events of one run, its three products built and certified PASS, then more events to decide:
    a decline, an approval, and an account the certified features have never seen."""
    from common.config import load_settings

    config = lane_config(root, db)
    local = load_settings(path=config, home=root)
    tables_root = local.tables_root
    write_admitted(spark, tables_root, good_events(run_id))
    write_labels(spark, tables_root, [label_row(1, "evt-0001", "fraud", DAY1 + timedelta(days=1))])
    ctx = BatchContext.from_settings(local, clock=lambda: CUTOFF)
    assert rerun.rerun(spark, ctx, run_id, engine="native")["ok"]
    write_admitted(spark, tables_root, [admitted_row(101, run_id, amount=200_000), admitted_row(102, run_id,
                   account="acct-2", channel="card_present")])
    write_admitted(spark, tables_root, [admitted_row(103, run_id, account="acct-9", channel="card_present"),
                                        admitted_row(104, run_id, account="acct-9", amount=300_000)])
    return SimpleNamespace(config=config, local=local, root=tables_root, ctx=ctx)


def stream(lane, name: str, run_id: str = RUN, *, fault: str | None = None) -> subprocess.CompletedProcess:
    """The stream's spark-submit door in a process of its own, optionally killed at a fault point."""
    env = {**os.environ, **({"LEDGERLANE_FAULT": fault} if fault else {})}
    return subprocess.run([sys.executable, "-m", f"streaming.{name}", "--config", str(lane.config), "--home",
                           str(lane.local.home), "--run-id", run_id, "--until-caught-up"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def via_cli(lane, *args: str) -> tuple[int, str, str]:
    return cli("--config", str(lane.config), "--home", str(lane.local.home), *args)


def read(spark, lane, table: str):
    return spark.read.format("delta").load(catalog.location(lane.root, table))


@pytest.fixture(scope="module")
def decided(spark, new_database, tmp_path_factory):
    """One lane, killed and resumed at every durable step of both streams; the tests only read it."""
    from human_loop import migrate

    db = new_database()
    migrate.migrate(db, run_id="r-decide-db")
    lane = certified_lane(spark, tmp_path_factory.mktemp("decided"), db)
    seen = SimpleNamespace(lane=lane, db=db, kills=[])
    for fault in ("decide.after_effects@*", "decide.before_commit@*"):
        done = stream(lane, "decide", fault=fault)
        seen.kills.append((fault, done.returncode, done.stderr[-2000:]))
        if fault == "decide.after_effects@*":
            with psycopg.connect(**db) as conn:
                seen.blocks_before_ledger = conn.execute("select count(*) from human_loop.card_controls").fetchone()[0]
            seen.ledger_before = _ledger_rows(spark, lane)
    seen.decide = via_cli(lane, "stream", "decide", "--run-id", RUN, "--until-caught-up", "--json")
    done = stream(lane, "cases", fault="cases.before_commit@*")
    seen.kills.append(("cases.before_commit@*", done.returncode, done.stderr[-2000:]))
    seen.cases = via_cli(lane, "stream", "cases", "--run-id", RUN, "--until-caught-up", "--json")
    seen.show = via_cli(lane, "decisions", "show", "--run-id", RUN, "--json")
    return seen


def _ledger_rows(spark, lane) -> int:
    path = catalog.location(lane.root, "decision.action_ledger")
    return spark.read.format("delta").load(path).count() if DeltaTable.isDeltaTable(spark, path) else 0


def test_every_kill_happened_where_it_was_asked_to(decided):
    assert [(fault, code) for fault, code, _ in decided.kills] == [
        ("decide.after_effects@*", -9), ("decide.before_commit@*", -9), ("cases.before_commit@*", -9)], decided.kills
    assert decided.blocks_before_ledger > 0 and decided.ledger_before == 0, "killed between effect and ledger"
    assert decided.decide[0] == 0, decided.decide[2]
    assert decided.cases[0] == 0, decided.cases[2]


def test_exactly_one_decision_per_admitted_event_across_restarts(spark, decided):
    admitted = read(spark, decided.lane, "bronze.admitted_events")
    decisions = read(spark, decided.lane, "decision.decisions")

    assert decisions.count() == admitted.count() == 10
    assert decisions.select("event_id").distinct().count() == 10
    assert decisions.join(admitted, on="event_id", how="left_anti").count() == 0
    assert {r.run_id for r in decisions.select("run_id").distinct().collect()} == {RUN}


def test_outcomes_reasons_and_the_account_without_features(spark, decided):
    by_event = {r.event_id: (r.outcome, list(r.reasons)) for r in read(spark, decided.lane, "decision.decisions").collect()}

    assert by_event["evt-0101"] == ("DECLINE", ["high_amount", "card_not_present"])
    assert by_event["evt-0102"] == ("APPROVE", ["low_risk"])
    assert by_event["evt-0103"] == ("REVIEW", ["no_certified_features"])
    assert by_event["evt-0104"] == ("DECLINE", ["no_certified_features", "high_amount", "card_not_present"])
    summary = json.loads(decided.show[1])
    assert summary["by_outcome"] == {"REVIEW": 7, "DECLINE": 2, "APPROVE": 1}


def test_no_action_audit_record_or_card_block_exists_twice(spark, decided):
    actions = read(spark, decided.lane, "decision.actions")
    audit = read(spark, decided.lane, "decision.audit")
    decisions = read(spark, decided.lane, "decision.decisions")
    with psycopg.connect(**decided.db) as conn:
        controls = conn.execute("select action_id, control_id from human_loop.card_controls").fetchall()
    blocks = {r.action_id for r in actions.where(F.col("action_type") == "block_card").collect()}
    ledger = read(spark, decided.lane, "decision.action_ledger").where(F.col("action_type") == "block_card")

    assert actions.count() == actions.select("action_id").distinct().count() == 9
    assert audit.count() == audit.select("audit_id").distinct().count() == decisions.count() + actions.count()
    assert sorted(a for a, _ in controls) == sorted(blocks) and len(blocks) == 2
    assert sorted((r.action_id, int(r.effect_ref)) for r in ledger.collect()) == sorted(controls)


def test_every_open_case_action_opened_exactly_one_case_and_the_worker_beat(spark, decided):
    opening = {r.action_id for r in read(spark, decided.lane, "decision.actions")
               .where(F.col("action_type") == "open_case").collect()}
    with psycopg.connect(**decided.db) as conn:
        cases = [r[0] for r in conn.execute("select action_id from human_loop.cases").fetchall()]
        beat = conn.execute("select run_id from human_loop.worker_heartbeats where worker = 'case-worker'").fetchone()
    ledger = read(spark, decided.lane, "decision.action_ledger").where(F.col("action_type") == "open_case")

    assert sorted(cases) == sorted(opening) and len(opening) == 7
    assert sorted(r.action_id for r in ledger.collect()) == sorted(opening)
    assert beat == (RUN,)
    assert json.loads(decided.cases[1])["cases"] == 7


def test_audit_names_the_batch_its_source_range_and_the_certified_versions(spark, decided):
    audit = read(spark, decided.lane, "decision.audit")
    rows = audit.select("run_id", "batch_id", "source_end", "feature_versions", "policy_version").collect()

    assert {r.run_id for r in rows} == {RUN} and {r.policy_version for r in rows} == {"policy-test-1"}
    assert all(r.source_end and set(r.feature_versions) == {"gold.account_features", "gold.merchant_risk"} for r in rows)


def test_update_and_delete_on_the_audit_table_are_refused_by_delta(spark, decided):
    table = DeltaTable.forPath(spark, catalog.location(decided.lane.root, "decision.audit"))
    rows = table.toDF().count()

    with pytest.raises(Exception, match="(?i)append.?only"):
        table.delete(F.col("kind") == "action")
    with pytest.raises(Exception, match="(?i)append.?only"):
        table.update(F.lit(True), {"what": F.lit("APPROVE")})
    assert table.toDF().count() == rows


def test_decisions_use_only_the_certified_feature_version(spark, new_database, tmp_path):
    from human_loop import migrate

    db = new_database()
    migrate.migrate(db, run_id="r-decide-db")
    lane = certified_lane(spark, tmp_path, db)
    certified_as_of = {r.as_of for r in read(spark, lane, "gold.account_features").select("as_of").distinct().collect()}
    certified_version = DeltaTable.forPath(spark, catalog.location(lane.root, "gold.account_features")).history(1) \
        .first()["version"]
    # A newer, uncertified version: another run's slice with a later cut-off and other counts.
    write_admitted(spark, lane.root, good_events("r-decide-2", start=200) * 1)
    later = BatchContext.from_settings(lane.local, clock=lambda: CUTOFF + timedelta(days=1))
    build.build(spark, later, "transactions_view", "r-decide-2")
    code, _, err = via_cli(lane, "job", "certify", "transactions_view", "--run-id", "r-decide-2")
    assert code == 0, err
    build.build(spark, later, "account_features", "r-decide-2")   # built, never certified

    code, _, err = via_cli(lane, "stream", "decide", "--run-id", RUN, "--until-caught-up")

    assert code == 0, err
    decisions = read(spark, lane, "decision.decisions")
    used = {r.feature_versions["gold.account_features"] for r in decisions.select("feature_versions").collect()}
    as_of = {r.features_as_of for r in decisions.where(F.col("features_as_of").isNotNull()).collect()}
    assert used == {certified_version}
    assert as_of == certified_as_of == {CUTOFF.replace(tzinfo=None)}


def test_a_placeholder_identity_never_reaches_a_decision(spark, new_database, tmp_path):
    from human_loop import migrate

    db = new_database()
    migrate.migrate(db, run_id="r-decide-db")
    lane = certified_lane(spark, tmp_path, db)
    assert via_cli(lane, "stream", "decide", "--run-id", RUN, "--until-caught-up")[0] == 0
    write_admitted(spark, lane.root, [admitted_row(300, RUN, account="unknown")])   # written around ingest
    before = table_state(spark, lane.root)

    code, out, err = via_cli(lane, "stream", "decide", "--run-id", RUN, "--until-caught-up")

    assert code == IdentityError.exit_code, err
    assert "account_id='unknown'" in err and "Traceback" not in err + out
    assert table_state(spark, lane.root) == before, "nothing of the batch was written"
    assert read(spark, lane, "decision.decisions").where(F.col("account_id") == "unknown").count() == 0


def test_a_deleted_or_moved_decide_checkpoint_is_refused_instead_of_deciding_everything_again(
        spark, new_database, tmp_path):
    import shutil

    from human_loop import migrate

    db = new_database()
    migrate.migrate(db, run_id="r-decide-db")
    lane = certified_lane(spark, tmp_path, db)
    assert via_cli(lane, "stream", "decide", "--run-id", RUN, "--until-caught-up")[0] == 0
    before = table_state(spark, lane.root)
    moved = tmp_path / "moved.toml"   # the same lane, its checkpoints_root changed
    moved.write_text(lane.config.read_text().replace(f'checkpoints_root = "{tmp_path}/checkpoints"',
                                                     f'checkpoints_root = "{tmp_path}/elsewhere"'))
    assert moved.read_text() != lane.config.read_text()

    code, out, err = cli("--config", str(moved), "--home", str(tmp_path), "stream", "decide", "--run-id", RUN,
                         "--until-caught-up")
    assert code == StateDrift.exit_code, err
    assert "decide batches already ran over this source table" in err and "Traceback" not in err + out

    shutil.rmtree(tmp_path / "checkpoints" / "decide")
    code, out, err = via_cli(lane, "stream", "decide", "--run-id", RUN, "--until-caught-up")
    assert code == StateDrift.exit_code, err
    assert "was deleted or replaced" in err and "Traceback" not in err + out
    assert table_state(spark, lane.root) == before, "nothing was decided twice"


def test_a_feature_product_without_any_pass_stops_the_stream_before_it_decides(spark, new_database, tmp_path):
    from common.config import load_settings

    db = new_database()
    config = lane_config(tmp_path, db)
    local = load_settings(path=config, home=tmp_path)
    write_admitted(spark, local.tables_root, good_events(RUN))

    code, _, err = cli("--config", str(config), "--home", str(tmp_path), "stream", "decide", "--run-id", RUN,
                       "--until-caught-up")

    assert code == UncertifiedProductError.exit_code
    assert "gold.account_features" in err and "no certification at all" in err
    assert not (tmp_path / "tables" / "decision").exists()
    # The gate is read beside the checkpoint's identity; a refused start records no identity either.
    assert not (tmp_path / "checkpoints" / "decide" / ckpt.IDENTITY_FILE).exists()
    assert not tables.exists(spark, catalog.location(local.tables_root, ckpt.APPS_TABLE))


def test_the_case_worker_fails_visibly_while_the_database_is_down_and_then_catches_up(spark, tmp_path):
    import shutil as files

    from helpers import make_home
    from human_loop import migrate
    from services import postgres
    from services.base import no_progress

    home = make_home("ledgerlane-cases-down-")
    try:
        postgres.start(home, no_progress)
        db = postgres.admin_dsn_params(home)
        migrate.migrate(db, run_id="r-cases-down")
        lane = certified_lane(spark, tmp_path, db)
        assert via_cli(lane, "stream", "decide", "--run-id", RUN, "--until-caught-up")[0] == 0
        postgres.stop(home, no_progress)

        code, out, err = via_cli(lane, "stream", "cases", "--run-id", RUN, "--until-caught-up")

        assert code == 4, err
        assert "could not serve the request" in err and "Traceback" not in err + out
        postgres.start(home, no_progress)
        code, out, err = via_cli(lane, "stream", "cases", "--run-id", RUN, "--until-caught-up", "--json")
        assert code == 0, err
        opening = read(spark, lane, "decision.actions").where(F.col("action_type") == "open_case").count()
        with psycopg.connect(**db) as conn:
            assert conn.execute("select count(*), count(distinct action_id) from human_loop.cases").fetchone() == (
                opening, opening)
    finally:
        postgres.stop(home, no_progress)
        files.rmtree(home, ignore_errors=True)
