"""Readiness of the human-loop database: every check reported with pass/fail and its reason.

Proves, as the application role: the database is reachable; migrated to head with matching
checksums; the append-only triggers are in place and always enabled; the application role has
exactly the privileges designed for it; required workers have fresh heartbeats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from human_loop import heartbeats as hb
from human_loop import migrate
from human_loop.connection import APP_ROLE, connect
from common.errors import LedgerlaneError

APPEND_ONLY_TABLES = ("cases", "case_events", "label_events", "card_controls")
# trigger name -> table: the guards V002 and V004 (card controls) create (each must call human_loop.reject_mutation).
GUARDS = {
    f"{table}_{suffix}": table for table in APPEND_ONLY_TABLES for suffix in ("append_only", "no_truncate")
}
DEFAULT_WORKERS = ("export-labels", "case-worker")
DEFAULT_FRESH_WITHIN = timedelta(hours=1)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str


def check_reachable(conn: psycopg.Connection) -> Check:
    row = conn.execute("select current_user, current_setting('server_version')").fetchone()
    return Check("reachable", row[0] == APP_ROLE, f"connected as {row[0]} to PostgreSQL {row[1]}"
                 + ("" if row[0] == APP_ROLE else f"; expected the application role {APP_ROLE}"))


def check_migrations(conn: psycopg.Connection, folder: Path | None = None) -> Check:
    state = migrate.describe(migrate.discover(folder), migrate.applied_rows(conn))
    if state["at_head"]:
        return Check("migrations", True, f"at head {state['head']}, checksums match")
    pending = [v["version"] for v in state["versions"] if v["state"] == "pending"]
    reasons = state["problems"] + ([f"pending: {', '.join(pending)}"] if pending else [])
    return Check("migrations", False, "; ".join(reasons))


def check_guards(conn: psycopg.Connection) -> Check:
    rows = conn.execute(
        "select t.tgname, c.relname, t.tgenabled, p.proname from pg_trigger t "
        "join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace "
        "join pg_proc p on p.oid = t.tgfoid where n.nspname = 'human_loop' and not t.tgisinternal"
    ).fetchall()
    found = {name: (table, enabled, proc) for name, table, enabled, proc in rows}
    problems = []
    for name, table in GUARDS.items():
        table_found, enabled, proc = found.get(name, (None, None, None))
        if table_found != table or proc != "reject_mutation":
            problems.append(f"trigger {name} on {table} is missing")
        elif enabled != "A":
            problems.append(f"trigger {name} on {table} is not ENABLE ALWAYS (state {enabled!r})")
    reason = "; ".join(problems) or f"UPDATE/DELETE/TRUNCATE rejected by triggers on {', '.join(APPEND_ONLY_TABLES)}"
    return Check("append_only_guards", not problems, reason)


def check_privileges(conn: psycopg.Connection) -> Check:
    problems = _role_attribute_problems(conn) + [
        problem for table in APPEND_ONLY_TABLES for problem in _table_privilege_problems(conn, table)
    ]
    reason = "; ".join(problems) or f"{APP_ROLE}: SELECT and INSERT only on {', '.join(APPEND_ONLY_TABLES)}"
    return Check("privileges", not problems, reason)


def _role_attribute_problems(conn: psycopg.Connection) -> list[str]:
    row = conn.execute(
        "select rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolcanlogin from pg_roles where rolname = %s",
        (APP_ROLE,),
    ).fetchone()
    if row is None:
        return [f"role {APP_ROLE} does not exist"]
    names = ("SUPERUSER", "CREATEDB", "CREATEROLE", "BYPASSRLS", "LOGIN")
    return [f"{APP_ROLE} has {name}" for name, granted in zip(names, row) if granted]


def _table_privilege_problems(conn: psycopg.Connection, table: str) -> list[str]:
    qualified = f"human_loop.{table}"  # a regclass literal passed as a value, never spliced into SQL
    row = conn.execute(
        "select has_table_privilege(%(r)s, %(t)s, 'UPDATE'), has_table_privilege(%(r)s, %(t)s, 'DELETE'), "
        "has_table_privilege(%(r)s, %(t)s, 'TRUNCATE'), has_any_column_privilege(%(r)s, %(t)s, 'UPDATE'), "
        "has_any_column_privilege(%(r)s, %(t)s, 'INSERT'), has_table_privilege(%(r)s, %(t)s, 'SELECT'), "
        "pg_get_userbyid(c.relowner) = %(r)s from pg_class c where c.oid = %(t)s::regclass",
        {"r": APP_ROLE, "t": qualified},
    ).fetchone()
    if row is None:
        return [f"table {qualified} is missing"]
    update, delete, truncate, any_update, can_insert, can_select, owns = row
    forbidden = [("UPDATE", update or any_update), ("DELETE", delete), ("TRUNCATE", truncate), ("ownership", owns)]
    problems = [f"{APP_ROLE} has {name} on {qualified}" for name, granted in forbidden if granted]
    problems += [f"{APP_ROLE} lacks {name} on {qualified}" for name, granted in (("INSERT", can_insert), ("SELECT", can_select)) if not granted]
    return problems


def check_heartbeats(conn: psycopg.Connection, workers: Sequence[str], fresh_within: timedelta) -> Check:
    beats = {row["worker"]: row for row in hb.heartbeats(conn)}
    problems = []
    for worker in workers:
        beat = beats.get(worker)
        if beat is None:
            problems.append(f"worker {worker} has never written a heartbeat")
        elif beat["age_s"] > fresh_within.total_seconds():
            problems.append(
                f"worker {worker} last beat {beat['age_s']:.0f}s ago (run {beat['run_id']}), "
                f"older than {fresh_within.total_seconds():.0f}s"
            )
    reason = "; ".join(problems) or (
        f"fresh within {fresh_within.total_seconds():.0f}s: {', '.join(workers)}" if workers else "no workers required"
    )
    return Check("worker_heartbeats", not problems, reason)


Step = Callable[[psycopg.Connection], Check]


def _steps(workers: Sequence[str], fresh_within: timedelta, folder: Path | None) -> list[tuple[str, Step]]:
    return [
        ("migrations", lambda conn: check_migrations(conn, folder)),
        ("append_only_guards", check_guards),
        ("privileges", check_privileges),
        ("worker_heartbeats", lambda conn: check_heartbeats(conn, workers, fresh_within)),
    ]


def _run_all(conn: psycopg.Connection, steps: list[tuple[str, Step]]) -> list[Check]:
    return [check_reachable(conn)] + [_guarded(name, step, conn) for name, step in steps]


def readiness(
    params: dict[str, Any],
    *,
    workers: Sequence[str] = DEFAULT_WORKERS,
    fresh_within: timedelta = DEFAULT_FRESH_WITHIN,
    folder: Path | None = None,
) -> list[Check]:
    """Every check, in order; when the database cannot be reached, the others fail saying so."""
    steps = _steps(workers, fresh_within, folder)
    try:
        with connect(params, application_name="ledgerlane-readiness") as conn:
            return _run_all(conn, steps)
    except LedgerlaneError as exc:
        app_problem = str(exc)
    # Not as the application role (not migrated yet?): still report what the login role can see.
    try:
        with connect(params, as_app=False, application_name="ledgerlane-readiness") as conn:
            checks = _run_all(conn, steps)
    except LedgerlaneError as exc:
        return unreachable(str(exc))
    return [Check("reachable", False, f"reachable, but not as {APP_ROLE}: {app_problem}"), *checks[1:]]


def unreachable(reason: str) -> list[Check]:
    """The report when no connection could be made (or its parameters could not even be resolved)."""
    skipped = [name for name, _ in _steps((), DEFAULT_FRESH_WITHIN, None)]
    return [Check("reachable", False, reason)] + [Check(name, False, "not checked: the database is unreachable") for name in skipped]


def _guarded(name: str, step: Callable[[psycopg.Connection], Check], conn: psycopg.Connection) -> Check:
    """A check that cannot run (say, the schema is missing) fails with the database's reason."""
    try:
        with conn.transaction():
            return step(conn)
    except psycopg.Error as exc:
        return Check(name, False, f"could not check: {' '.join(str(exc).split())}")


def as_dict(checks: list[Check]) -> dict[str, Any]:
    return {"ready": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}
