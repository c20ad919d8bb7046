"""Bookkeeping shared by the local services: folders, state files, pid files, ports, locks, Java.

A process counts as ours only when it is alive *and* its command line names a path inside this
home, so a recycled pid or another home's broker is never mistaken for ours (or killed by ``down``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.errors import EnvironmentProblem, ServiceError
from common.java import MIN_JAVA_MAJOR, assert_java, find_java, java_major_version  # noqa: F401 (re-exported)
from common.local_services import (  # noqa: F401 (re-exported: the read-only half of this bookkeeping)
    LOCALHOST, cmdline, is_alive, is_ours, pid_path, read_json, read_live_pid, read_state, service_dir,
)

Progress = Callable[[str], None]
# Keys that must never leave a status object, whatever a service puts into ``extra``.
_SECRET_KEY = re.compile(r"pass|secret|token|credential", re.IGNORECASE)


def no_progress(_message: str) -> None:
    """The default progress callback: say nothing."""


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status``/``up`` know about one local service; safe to print and to serialise."""

    name: str
    healthy: bool
    host: str
    port: int | None
    pid: int | None
    log_path: Path | None
    detail: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; secret-looking keys in ``extra`` are dropped as a second line of defence."""
        return {
            "name": self.name,
            "healthy": self.healthy,
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "log_path": str(self.log_path) if self.log_path else None,
            "detail": self.detail,
            "extra": {k: _json_safe(v) for k, v in self.extra.items() if not _SECRET_KEY.search(k)},
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# --- folders and state files -------------------------------------------------------------------


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, payload: Mapping[str, Any], mode: int = 0o644) -> None:
    """Write via a temp file and rename, so a crash never leaves half a JSON file behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, mode)  # the umask may have narrowed or the file may have pre-existed
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_state(home: Path, name: str, state: Mapping[str, Any]) -> None:
    write_json_atomic(service_dir(home, name) / "state.json", state)


@contextlib.contextmanager
def file_lock(path: Path, progress: Progress, what: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``; tells the user when it has to wait for another holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process that holds {path} ({what})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- processes -----------------------------------------------------------------------------------


def write_pid(home: Path, name: str, pid: int) -> None:
    path = pid_path(home, name)
    path.write_text(f"{pid}\n", encoding="utf-8")


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` has exited or ``timeout`` seconds passed; True when it is gone."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, name: str, timeout: float = 30.0, first: signal.Signals = signal.SIGTERM) -> None:
    """``first`` (SIGTERM), wait up to ``timeout``, then SIGKILL; ServiceError if the process survives."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if wait_for_exit(pid, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_for_exit(pid, 10.0):
        raise ServiceError(f"{name} (pid {pid}) survived SIGTERM and SIGKILL; check it with `ps -p {pid}`.")


def spawn_detached(argv: list[str], output: Path, cwd: Path) -> int:
    """Start ``argv`` as a daemon (own session, parent is init, not us) appending its output to ``output``.

    The intermediate shell exits at once, so the service outlives the CLI, never becomes our zombie,
    and Ctrl-C on the CLI cannot reach it.
    """
    script = 'out=$1; shift; "$@" </dev/null >>"$out" 2>&1 & echo $!'
    launcher = subprocess.run(
        ["/bin/sh", "-c", script, "spawn", str(output), *argv],
        cwd=cwd, capture_output=True, text=True, timeout=30, check=False, start_new_session=True,
    )
    pid = launcher.stdout.strip()
    if launcher.returncode != 0 or not pid.isdigit():
        raise ServiceError(f"could not start {argv[0]}: {launcher.stderr.strip() or 'no pid reported'}")
    return int(pid)


def run_checked(argv: list[str], what: str, *, timeout: float, **kwargs: Any) -> str:
    """Run a short helper command; ServiceError with its output when it fails or hangs."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{what} did not finish within {timeout:.0f}s: {' '.join(argv)}") from None
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise ServiceError(f"{what} failed with exit code {done.returncode}: {' '.join(argv)}\n{tail(output)}")
    return output


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def tail_file(path: Path, lines: int = 15) -> str:
    try:
        return tail(path.read_text(encoding="utf-8", errors="replace"), lines)
    except OSError:
        return ""


# --- ports ---------------------------------------------------------------------------------------


def is_port_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether a server could bind ``host:port`` now (SO_REUSEADDR, like the servers themselves use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def choose_port(preferred: int, *, avoid: set[int] = frozenset(), scan: int = 200) -> int:
    """``preferred`` if free, else the next free port above it, else any free port the kernel offers."""
    for port in range(preferred, min(preferred + scan, 65536)):
        if port not in avoid and is_port_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        port = probe.getsockname()[1]
    if port in avoid:
        raise EnvironmentProblem(f"no free TCP port found on {LOCALHOST} near {preferred}")
    return port


def accepts_connections(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False




