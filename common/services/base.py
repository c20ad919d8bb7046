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
import shutil
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

Progress = Callable[[str], None]
LOCALHOST = "127.0.0.1"
MIN_JAVA_MAJOR = 17
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


def service_dir(home: Path, name: str) -> Path:
    """``<home>/services/<name>``: everything one service owns lives below it."""
    return home / "services" / name


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


def pid_path(home: Path, name: str) -> Path:
    return service_dir(home, name) / f"{name}.pid"


def write_pid(home: Path, name: str, pid: int) -> None:
    path = pid_path(home, name)
    path.write_text(f"{pid}\n", encoding="utf-8")


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


def read_live_pid(home: Path, name: str, marker: str, progress: Progress) -> int | None:
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


# --- Java ----------------------------------------------------------------------------------------


def find_java() -> Path:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set (as Spark and Maven do), else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise EnvironmentProblem(
                f"JAVA_HOME={java_home} has no executable bin/java; point JAVA_HOME at a JDK "
                f"{MIN_JAVA_MAJOR}+ or unset it to use `java` from PATH."
            )
        return java
    found = shutil.which("java")
    if not found:
        raise EnvironmentProblem(
            f"no Java found: JAVA_HOME is unset and `java` is not on PATH; install a JDK "
            f"{MIN_JAVA_MAJOR}+ (scripts/setup.sh does this) or set JAVA_HOME."
        )
    return Path(found)


def java_major_version(java: Path) -> int:
    """The feature release of ``java`` (8 for "1.8.0_392", 17 for "17.0.15")."""
    output = run_checked([str(java), "-version"], f"{java} -version", timeout=30)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        raise EnvironmentProblem(f"could not read a Java version from `{java} -version`:\n{tail(output, 5)}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def assert_java(minimum: int = MIN_JAVA_MAJOR) -> Path:
    """The java executable to use, or EnvironmentProblem when it is missing or older than ``minimum``."""
    java = find_java()
    try:
        major = java_major_version(java)
    except ServiceError as exc:
        raise EnvironmentProblem(f"{java} does not run: {exc}") from None
    if major < minimum:
        raise EnvironmentProblem(
            f"{java} is Java {major}; ledgerlane needs Java {minimum} or newer (EMR runs JDK 17). "
            f"Set JAVA_HOME to a newer JDK or put one first on PATH."
        )
    return java
