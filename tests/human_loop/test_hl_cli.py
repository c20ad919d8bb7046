"""The ledgerlane db | labels | cases | job export-labels commands, against a configured database."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from cli.main import main
from human_loop import cases, migrate
from human_loop.connection import connect

from helpers import unique


@pytest.fixture(scope="module")
def run(write_config, ledgerlane_home):
    config = write_config()

    def invoke(capsys, *args: str) -> tuple[int, str, str]:
        code = main(["--home", str(ledgerlane_home), "--config", str(config), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def test_db_migrate_and_status(run, capsys):
    code, out, _ = run(capsys, "db", "migrate", "--run-id", "r-cli-mig", "--json")
    status_code, status_out, _ = run(capsys, "db", "status", "--json")

    assert code == 0 and json.loads(out) == {"run_id": "r-cli-mig", "applied": [], "head": migrate.discover()[-1].label}
    assert status_code == 0 and json.loads(status_out)["at_head"] is True


def test_db_readiness_exits_non_zero_listing_each_failed_check(run, capsys):
    worker = unique("worker")

    code, out, _ = run(capsys, "db", "readiness", "--require-worker", worker, "--json")

    report = json.loads(out)
    assert code == 1 and report["ready"] is False
    assert [(c["name"], c["ok"]) for c in report["checks"]] == [
        ("reachable", True), ("migrations", True), ("append_only_guards", True), ("privileges", True),
        ("worker_heartbeats", False),
    ]
    assert report["checks"][-1]["reason"] == f"worker {worker} has never written a heartbeat"


def test_labels_add_twice_then_as_of(run, capsys):
    account = unique("acct")
    args = ("labels", "add", "--account", account, "--label", "fraud", "--actor", "analyst-3",
            "--observed-at", "2025-03-01T10:00:00Z", "--note", "card skimmed", "--json")

    first_code, first, _ = run(capsys, *args)
    _, again, _ = run(capsys, *args)
    code, as_of, _ = run(capsys, "labels", "as-of", "--at", "now", "--account", account, "--json")
    _, human, _ = run(capsys, "labels", "as-of", "--at", "2000-01-01T00:00:00+00:00", "--account", account)

    assert first_code == 0 and json.loads(first) == json.loads(again)
    assert code == 0
    assert [(r["label"], r["note"]) for r in json.loads(as_of)["labels"]] == [("fraud", "card skimmed")]
    assert human.strip() == "no labels recorded at or before 2000-01-01T00:00:00+00:00"


def test_labels_add_with_a_reused_key_exits_with_the_conflict_code(run, capsys):
    key, account = unique("k"), unique("acct")
    base = ("labels", "add", "--key", key, "--account", account, "--actor", "analyst-3", "--observed-at", "now")
    run(capsys, *base, "--label", "fraud")

    code, _, err = run(capsys, *base, "--label", "legitimate")

    assert code == 6 and f"idempotency key '{key}' was already used with different content" in err


def test_naive_time_is_refused(run, capsys):
    code, _, err = run(capsys, "labels", "as-of", "--at", "2025-01-01T00:00:00")

    assert code == 2 and "--at must be an ISO-8601 time with a UTC offset" in err


def test_chargebacks_from_truth_then_import_twice(run, capsys, tmp_path):
    account = unique("acct")
    truth = tmp_path / "ground_truth-ledgerlane.transactions-3.jsonl"
    truth.write_text(json.dumps({"event_id": unique("ev"), "account_id": account, "is_fraud": True,
                                 "scenario": "big_amount", "event_time": "2025-02-01T10:00:00.000000Z"}) + "\n",
                     encoding="utf-8")

    _, made, _ = run(capsys, "labels", "chargebacks-from-truth", str(truth), "--json")
    feed = json.loads(made)["feed"]
    code, first, _ = run(capsys, "labels", "import", feed, "--json")
    _, second, _ = run(capsys, "labels", "import", feed, "--json")

    assert feed.endswith("chargebacks-ground_truth-ledgerlane.transactions-3.jsonl")
    assert code == 0
    assert (json.loads(first)["inserted"], json.loads(second)["unchanged"]) == (1, 1)


def test_cases_list_show_note_close(run, capsys, hl_db):
    account = unique("acct")
    with connect(hl_db) as conn:
        case = cases.open_case(conn, cases.OpenCaseAction(
            action_id=unique("act"), account_id=account, reason="velocity", run_id="r-cli-case",
            opened_at=datetime(2025, 3, 1, tzinfo=timezone.utc)))
    case_id = str(case["case_id"])

    note_code, _, _ = run(capsys, "cases", "note", case_id, "--actor", "analyst-3", "--text", "looking")
    close_code, closed, _ = run(capsys, "cases", "close", case_id, "--actor", "analyst-3", "--reason", "fraud")
    _, listed, _ = run(capsys, "cases", "list", "--account", account, "--json")
    _, shown, _ = run(capsys, "cases", "show", case_id, "--json")
    missing_code, _, err = run(capsys, "cases", "show", "0d6f3c1e-8a57-4f43-b3a9-000000000000")

    assert (note_code, close_code) == (0, 0) and "closed by analyst-3" in closed
    assert [(c["case_id"], c["status"]) for c in json.loads(listed)] == [(case_id, "closed")]
    assert [e["kind"] for e in json.loads(shown)["events"]] == ["opened", "note", "closed"]
    assert missing_code == 5 and "names no case" in err


def test_job_export_labels_from_the_cli(run, capsys, spark, hl_settings_for, tmp_path, new_database, write_config, ledgerlane_home):
    params = new_database()
    migrate.migrate(params)
    config = write_config(params, tables_root=str(tmp_path / "tables"))
    account = unique("acct")
    base = ["--home", str(ledgerlane_home), "--config", str(config)]
    main([*base, "labels", "add", "--account", account, "--label", "fraud", "--actor", "analyst-3", "--observed-at", "now"])
    capsys.readouterr()

    code = main([*base, "job", "export-labels", "--run-id", "r-cli-export", "--json"])
    summary = json.loads(capsys.readouterr().out)
    ready = main([*base, "db", "readiness", "--require-worker", "export-labels"])

    assert code == 0 and (summary["exported"], summary["delta_version"]) == (1, 0)
    assert ready == 0
