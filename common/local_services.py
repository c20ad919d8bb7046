"""Where this home's local services listen, read from the state files ``ledgerlane services up`` writes.

Shared code needs only this read-only view (a job resolves its Kafka bootstrap and PostgreSQL
parameters from it); starting and stopping the services is local tooling in ``services/``. A process
counts as ours only when it is alive *and* its command line names a path inside this home, so a
recycled pid or another home's broker is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.errors import ServiceError

LOCALHOST = "127.0.0.1"
KAFKA, POSTGRES = "kafka", "postgres"
POSTGRES_DATABASE = "ledgerlane"
POSTGRES_ADMIN_USER = "ledgerlane_admin"


def no_progress(_message: str) -> None:
    """A progress callback that says nothing."""


def service_dir(home: Path, name: str) -> Path:
    """``<home>/services/<name>``: everything one service owns lives below it."""
    return home / "services" / name


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, None when the file does not exist, ServiceError when corrupt."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServiceError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); expected the state ledgerlane "
            f"wrote there. Repair it, or delete it to let `ledgerlane services up` pick new values."
        ) from None
    if not isinstance(payload, dict):
        raise ServiceError(f"{path} holds a JSON {type(payload).__name__}, expected an object; repair or delete it.")
    return payload


def read_state(home: Path, name: str) -> dict[str, Any]:
    """``<home>/services/<name>/state.json`` (ports, cluster id, timestamps); empty when absent."""
    return read_json(service_dir(home, name) / "state.json") or {}


def pid_path(home: Path, name: str) -> Path:
    return service_dir(home, name) / f"{name}.pid"


def cmdline(pid: int) -> list[str]:
    """The argv of ``pid`` from /proc, empty when it is gone, a zombie or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs; reaps it first if it is our own exited child (a zombie is not alive)."""
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def is_ours(pid: int, marker: str) -> bool:
    """Alive and started for this home: one of its arguments is ``marker`` (a path inside the home)."""
    return is_alive(pid) and marker in cmdline(pid)


def read_live_pid(home: Path, name: str, marker: str, progress: Callable[[str], None]) -> int | None:
    """The pid in our pid file if that process is ours and alive; a stale pid file is removed."""
    path = pid_path(home, name)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    pid = int(text) if text.isdigit() else None
    if pid is not None and is_ours(pid, marker):
        return pid
    why = "unreadable" if pid is None else ("a different program" if is_alive(pid) else "not running")
    progress(f"{name}: removed stale pid file {path} (pid {text or '?'} is {why})")
    path.unlink(missing_ok=True)
    return None


def kafka_properties_path(home: Path) -> Path:
    """The broker's configuration: its path in /proc/<pid>/cmdline tells this home's broker apart."""
    return service_dir(home, KAFKA) / "server.properties"


def kafka_bootstrap(home: Path) -> str:
    """``127.0.0.1:PORT`` of this home's running broker; ServiceError when it is not running."""
    pid = read_live_pid(home, KAFKA, str(kafka_properties_path(home)), no_progress)
    port = read_state(home, KAFKA).get("port")
    if pid is None or not isinstance(port, int):
        raise ServiceError(f"no Kafka broker runs for {home}; start it with `ledgerlane services up`.")
    return f"{LOCALHOST}:{port}"


def postgres_credentials_path(home: Path) -> Path:
    return service_dir(home, POSTGRES) / "credentials.json"


def postgres_password(home: Path) -> str:
    """The local admin password from the 0600 credentials file; never printed."""
    path = postgres_credentials_path(home)
    hint = (f"If the cluster holds nothing you need, remove {service_dir(home, POSTGRES)} with "
            "`ledgerlane services reset` and run `ledgerlane services up` again.")
    if not path.exists():
        raise ServiceError(f"{path} is missing; the PostgreSQL admin password is unknown. {hint}")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ServiceError(f"{path} is readable by other users; expected mode 0600. Run `chmod 600 {path}`.")
    password = (read_json(path) or {}).get("password")
    if not isinstance(password, str) or not password:
        raise ServiceError(f"{path} has no password entry. {hint}")
    return password


def postgres_admin_params(home: Path) -> dict[str, Any]:
    """Connection parameters for the local admin role; the password comes from the 0600 credentials file."""
    port = read_state(home, POSTGRES).get("port")
    if not isinstance(port, int):
        raise ServiceError(f"PostgreSQL in {home} has no recorded port; run `ledgerlane services up` first.")
    return {"host": LOCALHOST, "port": port, "dbname": POSTGRES_DATABASE, "user": POSTGRES_ADMIN_USER,
            "password": postgres_password(home)}
