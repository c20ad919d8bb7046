"""Misuse of ``labels add`` and ``cases note/close`` (issue 10): each refusal is the project's own error with its
exit code, one paragraph naming the option and its bound, no stack trace, and nothing stored changes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from human_loop import cases
from human_loop.connection import connect
from helpers import add_label_args, assert_refused, unique

OBSERVED = "2025-03-01T10:00:00Z"
ID_RULE = "must match ^[A-Za-z0-9][A-Za-z0-9_.:-]{2,63}$ (3 to 64 characters), found 'xxxx"


@pytest.fixture(scope="module")
def case_id(hl_db) -> str:
    with connect(hl_db) as conn:
        case = cases.open_case(conn, cases.OpenCaseAction(
            action_id=unique("act"), account_id=unique("acct"), reason="velocity", run_id="r-misuse-1",
            opened_at=datetime(2025, 3, 1, tzinfo=timezone.utc)))
    return str(case["case_id"])


# --- 1. --corrects out of range -------------------------------------------------------------------


@pytest.mark.parametrize("value,bound", [
    ("0", "input should be greater than or equal to 1, found 0"),
    ("-1", "input should be greater than or equal to 1, found -1"),
    ("99999999999999999999", "input should be less than or equal to 9223372036854775807, found 99999999999999999999"),
])
def test_corrects_outside_the_id_range_is_refused(hl_run, capsys, hl_unchanged, value, bound):
    result = hl_run(capsys, *add_label_args("--observed-at", OBSERVED, "--corrects", value))

    assert_refused(result, 2, f"refused, nothing recorded: --corrects: {bound}")


# --- 2. a client model's ValidationError names every bad field --------------------------------------


def test_note_longer_than_its_bound_is_refused_naming_the_bound(hl_run, capsys, hl_unchanged):
    result = hl_run(capsys, *add_label_args("--observed-at", OBSERVED, "--note", "n" * 2001))

    err = assert_refused(result, 2, "--note: string should have at most 2000 characters, found 'nnnn",
                         "(2,001 characters)")
    assert len(err) < 300


def test_every_bad_field_is_named_in_one_refusal(hl_run, capsys, hl_unchanged):
    result = hl_run(capsys, *add_label_args("--observed-at", OBSERVED, "--corrects", "0", "--note", "a\x00b"))

    assert_refused(result, 2, "--corrects: input should be greater than or equal to 1",
                   "--note: note must not contain NUL characters")


# --- 3. case event text and keys beyond the database's bounds ----------------------------------------


@pytest.mark.parametrize("command,option,code,message", [
    ("note", "--text", 2, "--text is 100,000 characters long, at most 10,000 are allowed"),
    ("close", "--reason", 2, "--reason is 100,000 characters long, at most 10,000 are allowed"),
    ("note", "--actor", 5, f"--actor {ID_RULE}"),
    ("close", "--key", 5, f"--key {ID_RULE}"),
])
def test_case_event_option_of_100k_characters_is_refused(
        hl_run, capsys, hl_unchanged, case_id, command, option, code, message):
    text_option = "--text" if command == "note" else "--reason"
    options = {"--actor": "analyst-3", text_option: "looked at it", option: "x" * 100_000}

    result = hl_run(capsys, "cases", command, case_id, *[part for pair in options.items() for part in pair])

    err = assert_refused(result, code, message)
    assert len(err) < 300


def test_case_note_with_a_nul_character_is_refused(hl_run, capsys, hl_unchanged, case_id):
    result = hl_run(capsys, "cases", "note", case_id, "--actor", "analyst-3", "--text", "bad\x00byte")

    assert_refused(result, 2, "--text contains a NUL character at position 4")


def test_case_id_of_100k_characters_is_refused_briefly(hl_run, capsys, hl_unchanged):
    result = hl_run(capsys, "cases", "close", "c" * 100_000, "--actor", "analyst-3", "--reason", "done")

    err = assert_refused(result, 5, "case id must be a UUID, found 'cccc", "(100,000 characters)")
    assert len(err) < 300
