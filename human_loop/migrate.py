"""Versioned SQL migrations: ``migrations/V<NNN>__<name>.sql``, applied in order, each in one transaction.

Every applied version is recorded with the sha256 of its file. A run refuses to start when an applied
file has changed (or is gone, or the database knows a version this code does not): applied
migrations are immutable, a change is a new version. Concurrent runs are serialised by a session
advisory lock; the loser waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from human_loop.connection import connect
from common.errors import ConfigError, IdempotencyConflict, ServiceError

FILE_PATTERN = re.compile(r"^V(\d{3})__([a-z0-9_]+)\.sql$")
# Any constant works; it only has to differ from the other advisory locks ledgerlane takes.
LOCK_KEY = 7213400118500000
LOCK_WAIT = "120s"

_CREATE_TABLE = """
create table if not exists public.schema_migrations (
    version    integer primary key,
    name       text not null,
    checksum   text not null,
    applied_at timestamptz not null default clock_timestamp(),
    applied_by text not null default current_user,
    run_id     text
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"V{self.version:03d}__{self.name}"


def default_folder() -> Path:
    return Path(str(resources.files("human_loop") / "migrations"))


def discover(folder: Path | None = None) -> list[Migration]:
    """The migrations in ``folder``; versions must run 1, 2, 3… without gaps or repeats."""
    folder = folder or default_folder()
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise ConfigError(f"migration file {path} does not match V<NNN>__<name>.sql")
        data = path.read_bytes()
        found.append(Migration(int(match[1]), match[2], data.decode("utf-8"), hashlib.sha256(data).hexdigest()))
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise ConfigError(f"migrations in {folder} must be numbered {expected}, found {[m.version for m in found]}")
    return found


def applied_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """What the database says was applied ([] before the first migration)."""
    exists = conn.execute("select to_regclass('public.schema_migrations') is not null").fetchone()[0]
    if not exists:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select version, name, checksum, applied_at, applied_by, run_id from public.schema_migrations order by version"
        ).fetchall()


def drift(migrations: list[Migration], applied: list[dict[str, Any]]) -> list[str]:
    """Every way the database's history disagrees with the files; [] when it is a prefix of them."""
    by_version = {m.version: m for m in migrations}
    problems = []
    for row in applied:
        known = by_version.get(row["version"])
        if known is None:
            problems.append(f"V{row['version']:03d}__{row['name']} is applied but no such file exists (database is ahead of this code)")
        elif known.checksum != row["checksum"]:
            problems.append(
                f"{known.label} was applied with checksum {row['checksum'][:12]}… but the file now has "
                f"{known.checksum[:12]}…: applied migrations are immutable, add a new version instead"
            )
    return problems


def pending(migrations: list[Migration], applied: list[dict[str, Any]]) -> list[Migration]:
    done = {row["version"] for row in applied}
    return [m for m in migrations if m.version not in done]


def assert_no_drift(migrations: list[Migration], applied: list[dict[str, Any]]) -> None:
    problems = drift(migrations, applied)
    if problems:
        raise IdempotencyConflict("refusing to migrate: " + "; ".join(problems))


def migrate(params: dict[str, Any], *, folder: Path | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Apply what is pending, under the lock; returns the versions applied now and the head."""
    migrations = discover(folder)
    with connect(params, as_app=False, autocommit=True, application_name="ledgerlane-migrate") as conn:
        _acquire(conn)
        try:
            conn.execute(_CREATE_TABLE)
            applied = applied_rows(conn)
            assert_no_drift(migrations, applied)
            todo = pending(migrations, applied)
            for migration in todo:
                _apply(conn, migration, run_id)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    return {"applied": [m.label for m in todo], "head": migrations[-1].label if migrations else None}


def _apply(conn: psycopg.Connection, migration: Migration, run_id: str | None) -> None:
    with conn.transaction():
        conn.execute(migration.sql)
        conn.execute(
            "insert into public.schema_migrations (version, name, checksum, run_id) values (%s, %s, %s, %s)",
            (migration.version, migration.name, migration.checksum, run_id),
        )


def _acquire(conn: psycopg.Connection) -> None:
    """Wait for the migration lock (up to LOCK_WAIT), then fail naming whoever holds it."""
    conn.execute("select set_config('lock_timeout', %s, false)", (LOCK_WAIT,))
    try:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
    except psycopg.errors.LockNotAvailable:
        raise ServiceError(f"another migration still holds the lock after {LOCK_WAIT}: {_holder(conn)}") from None
    finally:
        conn.execute("select set_config('lock_timeout', '0', false)")


def _holder(conn: psycopg.Connection) -> str:
    row = conn.execute(
        """select a.pid, a.application_name, a.backend_start from pg_locks l
           join pg_stat_activity a on a.pid = l.pid
           where l.locktype = 'advisory' and l.granted
             and ((l.classid::bigint << 32) | l.objid::bigint) = %s""",
        (LOCK_KEY,),
    ).fetchone()
    return f"pid {row[0]} ({row[1] or 'no application name'}, connected since {row[2]:%Y-%m-%d %H:%M:%S%z})" if row else "holder gone"


def status(params: dict[str, Any], *, folder: Path | None = None) -> dict[str, Any]:
    """Per version: applied (with when and by whom), pending, or drifted; plus whether the database is at head."""
    migrations = discover(folder)
    with connect(params, as_app=False, application_name="ledgerlane-migrate") as conn:
        applied = applied_rows(conn)
    return describe(migrations, applied)


def describe(migrations: list[Migration], applied: list[dict[str, Any]]) -> dict[str, Any]:
    rows = {row["version"]: row for row in applied}
    versions = []
    for m in migrations:
        row = rows.get(m.version)
        state = "pending" if row is None else ("applied" if row["checksum"] == m.checksum else "drifted")
        versions.append({"version": m.label, "state": state, "checksum": m.checksum,
                         "applied_at": row["applied_at"].isoformat() if row else None})
    problems = drift(migrations, applied)
    at_head = not problems and not pending(migrations, applied)
    return {"at_head": at_head, "head": migrations[-1].label if migrations else None,
            "versions": versions, "problems": problems}
