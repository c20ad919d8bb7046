"""Bad input and security: hostile text survives verbatim, secrets never surface, outages lose nothing."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest

from cli.main import main
from human_loop import cases, labels, migrate, readiness
from human_loop.connection import connect
from common.errors import IdentityError, ServiceError

from helpers import PASSWORD_ENV, make_home, unique

HOSTILE = [
    "x'); drop table human_loop.label_events; --",
    "' or '1'='1",
    "%s %(at)s {table} $1 \\x00 \\\\",
    "Robert'); DELETE FROM human_loop.cases WHERE ('a'='a",
    "ünïcødé — \"quotes\" `ticks` ;; /* comment */ $$dollar$$",
]
OBSERVED = datetime(2025, 3, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_survives_verbatim_in_every_free_text_field(hl_db, text):
    count_tables = "select count(*) from pg_tables where schemaname = 'human_loop'"
    with connect(hl_db) as conn:
        tables_before = conn.execute(count_tables).fetchone()[0]
        label = labels.add_label(conn, labels.LabelEventIn(
            idempotency_key=unique("k"), account_id=unique("acct"), label="fraud", source="analyst",
            actor="analyst-1", observed_at=OBSERVED, note=text))
        case = cases.open_case(conn, cases.OpenCaseAction(
            action_id=unique("act"), account_id=unique("acct"), reason=text, run_id="r-sec-1", opened_at=OBSERVED))
        note = cases.add_note(conn, case["case_id"], "analyst-1", text)
    with connect(hl_db) as conn:
        stored_note = labels.by_key(conn, label.idempotency_key).note
        stored_reason = cases.get_case(conn, case["case_id"])["reason"]
        stored_body = cases.case_events(conn, case["case_id"])[-1]["body"]
        tables = conn.execute(count_tables).fetchone()[0]

    assert (stored_note, stored_reason, stored_body, note["body"]) == (text, text, text, text)
    assert tables == tables_before >= 5, "no table was dropped by the hostile text"


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("field", ["account_id", "actor", "idempotency_key", "event_id"])
def test_hostile_text_in_an_identity_field_is_refused_harmlessly(text, field):
    fields = {"idempotency_key": unique("k"), "account_id": unique("acct"), "label": "fraud", "source": "analyst",
              "actor": "analyst-1", "observed_at": OBSERVED, field: text}

    with pytest.raises(IdentityError, match=rf"{field} must match"):
        labels.LabelEventIn(**fields)


def test_hostile_account_in_as_of_cli_is_refused_and_nothing_leaks(write_config, capsys, ledgerlane_home):
    config = write_config()

    code = main(["--home", str(ledgerlane_home), "--config", str(config), "labels", "as-of", "--at", "now",
                 "--account", "x' or '1'='1", "--json"])

    captured = capsys.readouterr()
    assert code == 5
    assert captured.out == ""
    assert "account_id must match" in captured.err


def test_wrong_password_error_names_the_database_but_no_password(hl_db):
    wrong = {**hl_db, "password": "Wr0ng-S3cret-" + unique("pw")}

    with pytest.raises(ServiceError, match=r"PostgreSQL ledgerlane_admin@127\.0\.0\.1:\d+/ll_\w+ could not serve the request") as caught:
        with connect(wrong) as conn:
            conn.execute("select 1")

    message = str(caught.value) + repr(caught.value)
    assert wrong["password"] not in message
    assert hl_db["password"] not in message


def test_readiness_json_and_cli_errors_never_contain_the_password(hl_db, write_config, capsys, ledgerlane_home, monkeypatch):
    config = write_config()

    main(["--home", str(ledgerlane_home), "--config", str(config), "db", "readiness", "--json"])
    ready_out = capsys.readouterr()
    monkeypatch.setenv(PASSWORD_ENV, "Wr0ng-" + hl_db["password"][::-1])
    wrong_code = main(["--home", str(ledgerlane_home), "--config", str(config), "db", "readiness", "--json"])
    wrong_out = capsys.readouterr()
    migrate_code = main(["--home", str(ledgerlane_home), "--config", str(config), "db", "migrate"])
    migrate_out = capsys.readouterr()

    assert json.loads(ready_out.out)["checks"][0]["name"] == "reachable"
    assert wrong_code == 1 and json.loads(wrong_out.out)["ready"] is False
    assert "password authentication failed" in json.loads(wrong_out.out)["checks"][0]["reason"]
    assert migrate_code == 4 and "could not serve the request" in migrate_out.err
    for secret in (hl_db["password"], hl_db["password"][::-1]):
        for text in (ready_out.out, ready_out.err, wrong_out.out, wrong_out.err, migrate_out.out, migrate_out.err):
            assert secret not in text


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own: stopping it must not disturb the session's database."""
    from services import postgres
    from services.base import no_progress

    home = make_home("ledgerlane-pg-down-")
    try:
        postgres.start(home, no_progress)
        params = postgres.admin_dsn_params(home)
        migrate.migrate(params, run_id="r-pg-down")
        yield home, params
    finally:
        postgres.stop(home, no_progress)
        shutil.rmtree(home, ignore_errors=True)


def test_database_down_is_a_clear_error_and_loses_nothing_committed(own_postgres):
    from services import postgres
    from services.base import no_progress

    home, hl_db = own_postgres
    account = unique("acct")
    committed = labels.LabelEventIn(idempotency_key=unique("k"), account_id=account, label="fraud",
                                    source="chargeback", actor="feed-1", observed_at=OBSERVED)
    in_flight = committed.model_copy(update={"idempotency_key": unique("k"), "label": "suspicious"})
    with connect(hl_db) as conn:
        stored = labels.add_label(conn, committed)
    try:
        with pytest.raises(ServiceError, match="could not serve the request.*Committed data is unaffected"):
            with connect(hl_db) as conn:
                labels.add_label(conn, in_flight)
                postgres.stop(home, no_progress)  # the server dies before this transaction commits
        with pytest.raises(ServiceError, match=r"could not serve the request: connection failed"):
            with connect(hl_db) as conn:
                labels.add_label(conn, in_flight)
        down = readiness.readiness(hl_db, workers=())
    finally:
        postgres.start(home, no_progress)

    assert down[0].ok is False and "could not serve the request" in down[0].reason
    with connect(hl_db) as conn:
        assert labels.as_of(conn, datetime.now(timezone.utc), account) == [stored]
        retried = labels.add_label(conn, in_flight)
    with connect(hl_db) as conn:
        assert [k.label_event_id for k in labels.as_of(conn, datetime.now(timezone.utc), account)] == [retried.label_event_id]
        assert conn.execute("select count(*) from human_loop.label_events where account_id = %s", (account,)).fetchone()[0] == 2
