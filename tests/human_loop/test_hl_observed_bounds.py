"""observed_at is bounded (issue 10): from 1970-01-01T00:00:00Z to now + 5 minutes in ``labels add``, from 1970 in
the database (V005, NOT VALID: stored rows stay as they are), and the export refuses a stored row outside them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from common import catalog, delta
from human_loop import labels, migrate
from human_loop.connection import connect
from common.errors import IdentityError
from helpers import add_label_args, assert_refused, cli_invoker, human_loop_counts, migrations_up_to, unique

OBSERVED = "2025-03-01T10:00:00Z"
OUT_OF_BOUNDS = ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z")
INSERT_AS_ADMIN = ("insert into human_loop.label_events "
                   "(idempotency_key, account_id, label, source, actor, observed_at) "
                   "values (%s, %s, 'fraud', 'chargeback', 'feed-1', %s) returning label_event_id")


# --- in the client -----------------------------------------------------------------------------------


@pytest.mark.parametrize("observed", [*OUT_OF_BOUNDS, "9999-12-31T23:59:59Z"])
def test_labels_add_refuses_observed_at_out_of_bounds(hl_run, capsys, hl_unchanged, observed):
    result = hl_run(capsys, *add_label_args("--observed-at", observed))

    assert_refused(result, 2, "--observed-at must lie between 1970-01-01T00:00:00Z and now + 5 minutes (",
                   f"found {datetime.fromisoformat(observed).isoformat()}")


def test_labels_add_accepts_the_first_instant_of_1970(hl_run, capsys):
    code, out, err = hl_run(capsys, *add_label_args("--observed-at", "1970-01-01T00:00:00Z", "--json"))

    assert code == 0, err
    assert datetime.fromisoformat(json.loads(out)["observed_at"]) == labels.OBSERVED_FLOOR


# --- in the database and the export ------------------------------------------------------------------


def insert_as_admin(params: dict, *observed: str) -> list[int]:
    """Rows the application could not write, as the admin of a database that lacks V005."""
    with connect(params, as_app=False) as conn:
        return [conn.execute(INSERT_AS_ADMIN, (unique("k"), unique("acct"), moment)).fetchone()[0]
                for moment in observed]


def stored_times(params: dict) -> list[tuple[int, str]]:
    """Every label's id and observed_at as text (a year-1 time need not load into Python)."""
    with connect(params, as_app=False) as conn:
        return conn.execute("select label_event_id, (observed_at at time zone 'UTC')::text "
                            "from human_loop.label_events order by 1").fetchall()


@pytest.fixture
def before_v004(new_database, tmp_path) -> dict:
    """A scratch database migrated only to V003 (no floor yet), holding one label within the bounds."""
    params = new_database()
    migrate.migrate(params, folder=migrations_up_to(4, tmp_path / "migrations"))
    insert_as_admin(params, OBSERVED)
    return params


def new_label(observed_at: datetime) -> labels.LabelEventIn:
    return labels.LabelEventIn(idempotency_key=unique("k"), account_id=unique("acct"), label="fraud",
                               source="analyst", actor="analyst-1", observed_at=observed_at)


def test_v004_refuses_new_labels_before_1970_and_leaves_stored_ones_as_they_are(
        before_v004, write_config, ledgerlane_home, capsys):
    old = insert_as_admin(before_v004, *OUT_OF_BOUNDS)
    stored = stored_times(before_v004)
    run_scratch = cli_invoker(write_config(before_v004), ledgerlane_home)

    code, out, err = run_scratch(capsys, "db", "migrate", "--json")

    assert (code, json.loads(out)["applied"]) == (0, ["V005__observed_at_floor"]), err
    assert stored_times(before_v004) == stored and [row[0] for row in stored[1:]] == old
    with pytest.raises(IdentityError, match="label_events_observed_since_1970"), connect(before_v004) as conn:
        labels.add_label(conn, new_label(labels.OBSERVED_FLOOR - timedelta(microseconds=1)))
    with connect(before_v004) as conn:
        on_floor = labels.add_label(conn, new_label(labels.OBSERVED_FLOOR))
    assert stored_times(before_v004) == stored + [(on_floor.label_event_id, "1970-01-01 00:00:00")]


def test_export_refuses_labels_out_of_bounds_naming_them_and_copies_nothing(
        spark, before_v004, write_config, ledgerlane_home, tmp_path, capsys):
    tables_root = str(tmp_path / "tables")
    run_scratch = cli_invoker(write_config(before_v004, tables_root=tables_root), ledgerlane_home)
    first = run_scratch(capsys, "job", "export-labels", "--run-id", "r-bounds-1")
    bad = insert_as_admin(before_v004, *OUT_OF_BOUNDS)
    insert_as_admin(before_v004, OBSERVED)
    path = catalog.location(tables_root, "labels.label_events")
    before = (delta.latest_version(spark, path), spark.read.format("delta").load(path).count())
    counts = human_loop_counts(before_v004)

    result = run_scratch(capsys, "job", "export-labels", "--run-id", "r-bounds-2")

    assert first[0] == 0, first[2]
    assert_refused(result, 10, "refusing to export label events with observed_at outside 1970-01-01T00:00:00Z "
                               f"to recorded_at + 5 minutes: #{bad[0]} (0001-01-01 00:00:00 UTC), "
                               f"#{bad[1]} (1969-12-31 23:59:59 UTC). Nothing was copied into labels.label_events")
    assert (delta.latest_version(spark, path), spark.read.format("delta").load(path).count()) == before == (0, 1)
    assert human_loop_counts(before_v004) == counts
