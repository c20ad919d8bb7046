"""Migrations: versioned SQL applied once each, checksums recorded, drift refused, runs serialised."""

from __future__ import annotations

import re
import shutil
import threading

import psycopg
import pytest

from human_loop import migrate
from common.errors import ConfigError, IdempotencyConflict

HEAD = len(migrate.discover())
NEXT = f"V{HEAD + 1:03d}"  # the version a new migration file would take


@pytest.fixture
def migrations_copy(tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.default_folder(), folder)
    return folder


def test_discover_finds_contiguous_versions_with_sha256_checksums():
    found = migrate.discover()

    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].label == "V001__human_loop_schema"
    assert all(len(m.checksum) == 64 for m in found)


def test_discover_refuses_a_gap_in_versions(migrations_copy):
    (migrations_copy / f"V{HEAD + 3:03d}__later.sql").write_text("select 1;", encoding="utf-8")
    numbered = list(range(1, HEAD + 1))

    with pytest.raises(ConfigError, match=re.escape(f"must be numbered {numbered + [HEAD + 1]}, found {numbered + [HEAD + 3]}")):
        migrate.discover(migrations_copy)


def test_discover_refuses_a_badly_named_file(migrations_copy):
    (migrations_copy / "add_things.sql").write_text("select 1;", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"add_things.sql does not match V<NNN>__<name>.sql"):
        migrate.discover(migrations_copy)


def test_migrate_applies_every_version_once_and_records_checksums(new_database):
    params = new_database()

    first = migrate.migrate(params, run_id="r-mig-1")
    second = migrate.migrate(params, run_id="r-mig-2")

    labels = [m.label for m in migrate.discover()]
    assert first == {"applied": labels, "head": labels[-1]}
    assert second == {"applied": [], "head": labels[-1]}
    with psycopg.connect(**params) as conn:
        rows = conn.execute("select version, checksum, run_id from public.schema_migrations order by version").fetchall()
    assert rows == [(m.version, m.checksum, "r-mig-1") for m in migrate.discover()]
    assert migrate.status(params)["at_head"] is True


def test_changed_applied_file_is_refused_and_nothing_runs(new_database, migrations_copy):
    params = new_database()
    migrate.migrate(params, folder=migrations_copy)
    v002 = migrations_copy / "V002__append_only_guards.sql"
    v002.write_text(v002.read_text(encoding="utf-8") + "\n-- edited after release\n", encoding="utf-8")
    (migrations_copy / f"{NEXT}__new_table.sql").write_text("create table human_loop.extra (x int);", encoding="utf-8")

    with pytest.raises(IdempotencyConflict, match=r"V002__append_only_guards was applied with checksum .* applied migrations are immutable"):
        migrate.migrate(params, folder=migrations_copy)

    with psycopg.connect(**params) as conn:
        assert conn.execute("select to_regclass('human_loop.extra')").fetchone()[0] is None
    state = migrate.status(params, folder=migrations_copy)
    assert [v["state"] for v in state["versions"]] == ["applied", "drifted"] + ["applied"] * (HEAD - 2) + ["pending"]
    assert state["at_head"] is False


def test_database_ahead_of_the_code_is_refused(new_database, migrations_copy):
    params = new_database()
    (migrations_copy / f"{NEXT}__future.sql").write_text("select 1;", encoding="utf-8")
    migrate.migrate(params, folder=migrations_copy)

    with pytest.raises(IdempotencyConflict, match=rf"{NEXT}__future is applied but no such file exists"):
        migrate.migrate(params)


def test_failed_migration_rolls_back_whole_version(new_database, migrations_copy):
    params = new_database()
    (migrations_copy / f"{NEXT}__broken.sql").write_text(
        "create table human_loop.half (x int);\nselect no_such_function();", encoding="utf-8"
    )

    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate.migrate(params, folder=migrations_copy)

    with psycopg.connect(**params) as conn:
        assert conn.execute("select to_regclass('human_loop.half')").fetchone()[0] is None
        assert conn.execute("select max(version) from public.schema_migrations").fetchone()[0] == HEAD


def test_concurrent_runs_are_serialised_and_apply_each_version_once(new_database, migrations_copy):
    params = new_database()
    # A slow version makes the overlap certain: the second runner must wait on the advisory lock.
    (migrations_copy / f"{NEXT}__slow.sql").write_text("select pg_sleep(0.5);", encoding="utf-8")
    results, errors = [], []

    def run() -> None:
        try:
            results.append(migrate.migrate(params, folder=migrations_copy))
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(len(r["applied"]) for r in results) == [0, HEAD + 1]
    with psycopg.connect(**params) as conn:
        assert conn.execute("select count(*) from public.schema_migrations").fetchone()[0] == HEAD + 1
