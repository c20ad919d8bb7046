"""Cases: one per open_case action (deterministic id), append-only events, derived status."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from human_loop import cases
from human_loop.connection import connect
from common.errors import IdempotencyConflict, IdentityError

from helpers import unique

OPENED = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)


def action(**extra) -> cases.OpenCaseAction:
    fields = {"action_id": unique("act"), "account_id": unique("acct"), "event_id": unique("ev"),
              "decision_id": unique("dec"), "reason": "score 0.97 > 0.9", "run_id": "r-cases-1", "opened_at": OPENED}
    return cases.OpenCaseAction(**{**fields, **extra})


def open_case(params: dict, act: cases.OpenCaseAction) -> dict:
    with connect(params) as conn:
        return cases.open_case(conn, act)


def test_case_id_is_uuid5_of_the_action_id():
    assert cases.case_id_for("act-123") == uuid.uuid5(cases.CASE_NAMESPACE, "act-123")
    assert cases.case_id_for("act-123") == cases.case_id_for("act-123")


def test_open_case_is_idempotent_on_the_action_id(hl_db):
    act = action()

    first = open_case(hl_db, act)
    again = open_case(hl_db, act)

    assert again == first
    assert first["case_id"] == cases.case_id_for(act.action_id)
    with connect(hl_db) as conn:
        assert [e["kind"] for e in cases.case_events(conn, first["case_id"])] == ["opened"]
        assert cases.get_case(conn, first["case_id"])["status"] == "open"


def test_same_action_id_with_different_content_is_a_conflict(hl_db):
    act = action()
    open_case(hl_db, act)

    with pytest.raises(IdempotencyConflict, match=rf"action id '{act.action_id}' was already used with different content \(fields: account_id\)"):
        open_case(hl_db, act.model_copy(update={"account_id": unique("acct")}))


@pytest.mark.parametrize("field,value", [("action_id", "unknown"), ("account_id", "n/a"), ("event_id", "null")])
def test_open_case_action_refuses_placeholders(field, value):
    with pytest.raises(IdentityError, match=rf"{field} must be an explicit identifier"):
        action(**{field: value})


def test_note_and_close_append_events_and_derive_status(hl_db):
    case_id = open_case(hl_db, action())["case_id"]

    with connect(hl_db) as conn:
        note = cases.add_note(conn, case_id, "analyst-7", "called the customer")
        again = cases.add_note(conn, case_id, "analyst-7", "called the customer")
        closed = cases.close_case(conn, case_id, "analyst-7", "confirmed fraud")
        closed_twice = cases.close_case(conn, case_id, "analyst-9", "also fraud")
        late_note = cases.add_note(conn, case_id, "analyst-9", "refund issued")
        overview = cases.get_case(conn, case_id)
        kinds = [e["kind"] for e in cases.case_events(conn, case_id)]

    assert again == note
    assert closed_twice == closed
    assert late_note["kind"] == "note"
    assert overview["status"] == "closed" and overview["event_count"] == 4
    assert kinds == ["opened", "note", "closed", "note"]


def test_event_key_reused_with_other_content_is_a_conflict(hl_db):
    case_id = open_case(hl_db, action())["case_id"]
    key = unique("note")
    with connect(hl_db) as conn:
        cases.add_note(conn, case_id, "analyst-7", "first", key)

    with pytest.raises(IdempotencyConflict, match=rf"idempotency key '{key}' was already used with different content \(fields: body\)"):
        with connect(hl_db) as conn:
            cases.add_note(conn, case_id, "analyst-7", "second", key)


def test_unknown_case_is_named_in_the_error(hl_db):
    missing = uuid.uuid4()

    with pytest.raises(IdentityError, match=rf"case_id '{missing}' names no case"):
        with connect(hl_db) as conn:
            cases.add_note(conn, missing, "analyst-7", "hello")


def test_list_filters_by_status_and_account(hl_db):
    account = unique("acct")
    open_id = open_case(hl_db, action(account_id=account))["case_id"]
    closed_id = open_case(hl_db, action(account_id=account))["case_id"]
    with connect(hl_db) as conn:
        cases.close_case(conn, closed_id, "analyst-7", "false positive")
        all_for_account = {c["case_id"] for c in cases.list_cases(conn, account_id=account)}
        open_for_account = [c["case_id"] for c in cases.list_cases(conn, account_id=account, status="open")]

    assert all_for_account == {open_id, closed_id}
    assert open_for_account == [open_id]


def test_case_id_text_must_be_a_uuid():
    with pytest.raises(IdentityError, match="case id must be a UUID, found 'abc'"):
        cases.parse_case_id("abc")
