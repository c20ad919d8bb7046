"""Label events: idempotent by key, corrections, labels as of a time (index-backed), bulk import."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from human_loop import label_import, labels
from human_loop.connection import connect
from common.errors import ConfigError, IdempotencyConflict, IdentityError

from helpers import unique

OBSERVED = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def label_in(account: str, label: str = "fraud", **extra) -> labels.LabelEventIn:
    fields = {"idempotency_key": unique("k"), "account_id": account, "label": label, "source": "analyst",
              "actor": "analyst-1", "observed_at": OBSERVED, **extra}
    return labels.LabelEventIn(**fields)


def add(params: dict, event: labels.LabelEventIn) -> labels.StoredLabel:
    with connect(params) as conn:
        return labels.add_label(conn, event)


def count_labels(params: dict, account: str) -> int:
    with connect(params) as conn:
        return conn.execute("select count(*) from human_loop.label_events where account_id = %s", (account,)).fetchone()[0]


def test_same_key_same_content_returns_the_stored_record(hl_db):
    event = label_in(unique("acct"))

    first = add(hl_db, event)
    again = add(hl_db, event)

    assert again == first
    assert count_labels(hl_db, event.account_id) == 1


def test_same_content_in_another_time_zone_is_the_same_content(hl_db):
    event = label_in(unique("acct"))
    first = add(hl_db, event)

    shifted = event.model_copy(update={"observed_at": OBSERVED.astimezone(timezone(timedelta(hours=5)))})

    assert add(hl_db, shifted).label_event_id == first.label_event_id


def test_same_key_different_content_is_a_conflict_naming_key_and_field(hl_db):
    event = label_in(unique("acct"))
    add(hl_db, event)

    changed = event.model_copy(update={"label": "legitimate"})

    with pytest.raises(IdempotencyConflict, match=rf"idempotency key '{event.idempotency_key}' was already used with different content \(label: stored 'fraud', new 'legitimate'\)"):
        add(hl_db, changed)
    assert count_labels(hl_db, event.account_id) == 1


def test_correction_is_a_new_event_pointing_at_the_old_one(hl_db):
    account = unique("acct")
    wrong = add(hl_db, label_in(account, "fraud"))

    fixed = add(hl_db, label_in(account, "legitimate", corrects_label_event_id=wrong.label_event_id))

    with connect(hl_db) as conn:
        known = labels.as_of(conn, datetime.now(timezone.utc), account)
    assert [(k.label, k.corrects_label_event_id) for k in known] == [("legitimate", wrong.label_event_id)]
    assert fixed.label_event_id > wrong.label_event_id
    assert count_labels(hl_db, account) == 2


def test_correction_of_another_accounts_event_is_refused(hl_db):
    other = add(hl_db, label_in(unique("acct")))

    with pytest.raises(IdentityError, match="label_events_corrects_same_account"):
        add(hl_db, label_in(unique("acct"), corrects_label_event_id=other.label_event_id))


@pytest.mark.parametrize("field,value", [("account_id", "unknown"), ("account_id", "N/A"), ("actor", ""),
                                         ("idempotency_key", "placeholder"), ("event_id", "0000")])
def test_model_refuses_placeholder_keys(field, value):
    fields = {"idempotency_key": unique("k"), "account_id": unique("acct"), "label": "fraud", "source": "analyst",
              "actor": "analyst-1", "observed_at": OBSERVED, field: value}

    with pytest.raises(IdentityError, match=rf"{field} must be an explicit identifier, found placeholder"):
        labels.LabelEventIn(**fields)


def test_as_of_answers_what_was_known_at_each_time(hl_db):
    account = unique("acct")
    first = add(hl_db, label_in(account, "suspicious"))
    second = add(hl_db, label_in(account, "fraud"))
    on_event = add(hl_db, label_in(account, "legitimate", event_id=unique("ev")))

    with connect(hl_db) as conn:
        before = labels.as_of(conn, first.recorded_at - timedelta(microseconds=1), account)
        at_first = labels.as_of(conn, first.recorded_at, account)
        at_second = labels.as_of(conn, second.recorded_at, account)
        latest = labels.as_of(conn, on_event.recorded_at, account)

    assert before == []
    assert [k.label_event_id for k in at_first] == [first.label_event_id]
    assert [k.label_event_id for k in at_second] == [second.label_event_id]
    assert sorted(k.label_event_id for k in latest) == [second.label_event_id, on_event.label_event_id]


def test_as_of_refuses_a_placeholder_account():
    with pytest.raises(IdentityError, match="account_id must be an explicit identifier"):
        labels.as_of(None, OBSERVED, "unknown")


def test_single_account_as_of_is_index_backed(hl_db):
    with connect(hl_db, as_app=False) as conn:
        conn.execute(
            "insert into human_loop.label_events (idempotency_key, account_id, label, source, actor, observed_at) "
            "select 'plan-' || g, 'acct-plan-' || (g % 2000), 'fraud', 'chargeback', 'feed-1', now() - interval '1 day' "
            "from generate_series(1, 20000) g"
        )
        conn.execute("analyze human_loop.label_events")
        plan = labels.explain_as_of(conn, datetime.now(timezone.utc), "acct-plan-7")
        conn.rollback()

    assert "label_events_subject_asof_idx" in plan
    assert "Seq Scan" not in plan


# --- bulk import -----------------------------------------------------------------------------------


def write_csv(path, rows: list[dict]) -> None:
    header = ["idempotency_key", "account_id", "event_id", "label", "observed_at", "source", "actor", "note"]
    lines = [",".join(header)] + [",".join(str(row.get(col, "")) for col in header) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def feed_rows(account: str, n: int) -> list[dict]:
    return [{"idempotency_key": unique("cb"), "account_id": account, "event_id": unique("ev"), "label": "fraud",
             "observed_at": "2025-03-01T12:00:00+00:00"} for _ in range(n)]


def import_file(params: dict, path, fmt: str | None = None) -> dict:
    with connect(params) as conn:
        return label_import.import_labels(conn, label_import.read_feed(path, fmt))


def test_csv_import_is_idempotent_in_bulk(hl_db, tmp_path):
    account = unique("acct")
    feed = tmp_path / "chargebacks.csv"
    write_csv(feed, feed_rows(account, 5))

    first = import_file(hl_db, feed)
    again = import_file(hl_db, feed)

    assert first == {"rows": 5, "inserted": 5, "unchanged": 0}
    assert again == {"rows": 5, "inserted": 0, "unchanged": 5}
    with connect(hl_db) as conn:
        stored = conn.execute("select source, actor, note, event_id is not null from human_loop.label_events "
                              "where account_id = %s", (account,)).fetchall()
    assert stored == [("chargeback", "chargeback-feed", "", True)] * 5


def test_jsonl_import_with_an_overlap_inserts_only_new_keys(hl_db, tmp_path):
    account = unique("acct")
    rows = feed_rows(account, 4)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]), encoding="utf-8")
    second.write_text("".join(json.dumps(r) + "\n" for r in rows[1:]), encoding="utf-8")

    import_file(hl_db, first)

    assert import_file(hl_db, second) == {"rows": 3, "inserted": 1, "unchanged": 2}
    assert count_labels(hl_db, account) == 4


def test_import_conflicting_with_stored_content_is_refused_whole(hl_db, tmp_path):
    account = unique("acct")
    rows = feed_rows(account, 3)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    import_file(hl_db, feed)
    changed = {**rows[0], "label": "legitimate"}
    feed.write_text("".join(json.dumps(r) + "\n" for r in [rows[1], changed, rows[2]]), encoding="utf-8")

    with pytest.raises(IdempotencyConflict, match=rf"nothing imported.*line 2: key '{rows[0]['idempotency_key']}' differs from the stored record"):
        import_file(hl_db, feed)
    assert count_labels(hl_db, account) == 1


def test_import_with_one_key_twice_and_different_content_is_refused(hl_db, tmp_path):
    account = unique("acct")
    row = feed_rows(account, 1)[0]
    feed = tmp_path / "twice.jsonl"
    feed.write_text(json.dumps(row) + "\n" + json.dumps({**row, "note": "second thoughts"}) + "\n", encoding="utf-8")

    with pytest.raises(IdempotencyConflict, match=rf"key '{row['idempotency_key']}' differs from the same key earlier in the file"):
        import_file(hl_db, feed)
    assert count_labels(hl_db, account) == 0


def test_import_lists_every_row_with_a_placeholder_identity(hl_db, tmp_path):
    account = unique("acct")
    rows = feed_rows(account, 4)
    rows[1]["account_id"] = "unknown"
    rows[3]["event_id"] = "N/A"
    feed = tmp_path / "bad.csv"
    write_csv(feed, rows)

    with pytest.raises(IdentityError, match=r"nothing imported: line 3 \(key .*\): account_id; line 5 \(key .*\): event_id"):
        import_file(hl_db, feed)
    assert count_labels(hl_db, account) == 0


@pytest.mark.parametrize("content,message", [
    ('{"idempotency_key": "cb-1aa", "account_id": "acct-1aa", "label": "maybe", "observed_at": "2025-01-01T00:00:00Z"}',
     r"bad.jsonl line 1: label must be one of \['fraud', 'legitimate', 'suspicious'\], found 'maybe'"),
    ('{"idempotency_key": "cb-1aa", "account_id": "acct-1aa", "label": "fraud", "observed_at": "2025-01-01T00:00:00"}',
     r"line 1: observed_at must be an ISO-8601 time with a UTC offset, found '2025-01-01T00:00:00'"),
    ('{"idempotency_key": "cb-1aa", "label": "fraud", "observed_at": "2025-01-01T00:00:00Z", "colour": "red"}',
     r"line 1: unknown fields \['colour'\], missing fields \['account_id'\]"),
    ("not json", r"bad.jsonl line 1: not valid JSON"),
])
def test_malformed_feed_records_name_the_line(tmp_path, content, message):
    feed = tmp_path / "bad.jsonl"
    feed.write_text(content + "\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=message):
        list(label_import.read_feed(feed))


def test_unknown_feed_format_is_refused(tmp_path):
    feed = tmp_path / "feed.xlsx"
    feed.write_text("", encoding="utf-8")

    with pytest.raises(ConfigError, match="cannot tell the format of .*feed.xlsx"):
        list(label_import.read_feed(feed))


def test_chargeback_feed_from_simulator_ground_truth_imports_once(hl_db, tmp_path):
    account = unique("acct")
    truth = [
        {"event_id": "ev-gt-1", "account_id": account, "is_fraud": True, "scenario": "card_burst",
         "event_time": "2025-02-01T10:00:00.000000Z", "amount_minor": 100},
        {"event_id": "ev-gt-2", "account_id": account, "is_fraud": False, "scenario": None,
         "event_time": "2025-02-01T11:00:00.000000Z", "amount_minor": 200},
    ]
    truth_path = tmp_path / "ground_truth-ledgerlane.transactions-7.jsonl"
    truth_path.write_text("".join(json.dumps(t) + "\n" for t in truth), encoding="utf-8")
    feed = tmp_path / "chargebacks.jsonl"

    label_import.write_jsonl(label_import.chargebacks_from_ground_truth(label_import.read_jsonl(truth_path)), feed)
    records = list(label_import.read_jsonl(feed))

    assert records == [{
        "idempotency_key": label_import.chargeback_key("ev-gt-1"), "account_id": account, "event_id": "ev-gt-1",
        "label": "fraud", "observed_at": "2025-02-01T10:00:00.000000Z", "source": "chargeback",
        "actor": "chargeback-feed", "note": "card_burst",
    }]
    assert import_file(hl_db, feed)["inserted"] == 1
    assert import_file(hl_db, feed)["inserted"] == 0


def test_include_legitimate_adds_a_label_for_every_other_event():
    truth = [{"event_id": "ev-a1", "account_id": "acct-a1", "is_fraud": False, "scenario": None,
              "event_time": "2025-02-01T11:00:00Z"}]

    records = list(label_import.chargebacks_from_ground_truth(truth, include_legitimate=True))

    assert [(r["label"], r["idempotency_key"]) for r in records] == [("legitimate", label_import.chargeback_key("ev-a1"))]
