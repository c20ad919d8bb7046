"""A throwaway local PostgreSQL cluster under ``<home>/services/postgres``, started with Debian's binaries.

The admin role's password is generated at init and kept only in ``credentials.json`` (mode 0600,
the local secret store); it is never printed, logged, put on a command line or into a status.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import stat
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from common.errors import EnvironmentProblem, LedgerlaneError, ServiceError
from services import base
from common.local_services import (
    POSTGRES_ADMIN_USER, POSTGRES_DATABASE, postgres_admin_params, postgres_credentials_path, postgres_password,
)
from services.base import LOCALHOST, Progress, ServiceStatus

NAME = "postgres"
PREFERRED_PORT = 55432
DATABASE = POSTGRES_DATABASE
ADMIN_USER = POSTGRES_ADMIN_USER
# initdb and pg_ctl refuse to run as root, so as root the cluster belongs to this system user.
RUN_USER = "ledgerlane-pg"
PG_ROOTS = Path("/usr/lib/postgresql")
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
INIT_MARKER = ".init-incomplete"
UNIX_SOCKET_MAX = 107  # sun_path is 108 bytes including the trailing NUL


def _dir(home: Path) -> Path:
    return base.service_dir(home, NAME)


def data_dir(home: Path) -> Path:
    return _dir(home) / "data"


def log_path(home: Path) -> Path:
    return _dir(home) / "postgres.log"


# --- binaries and the user they run as -----------------------------------------------------------


def find_pg_bin(prefer_major: str | None = None) -> Path:
    """The folder holding initdb/pg_ctl/postgres: Debian's newest (or ``prefer_major``), else PATH."""
    candidates = sorted(PG_ROOTS.glob("*/bin"), key=_version_key, reverse=True)
    if prefer_major:
        candidates.sort(key=lambda path: path.parent.name != prefer_major)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all(os.access(folder / binary, os.X_OK) for binary in REQUIRED_BINARIES):
            return folder
    raise EnvironmentProblem(
        f"PostgreSQL server binaries ({', '.join(REQUIRED_BINARIES)}) not found in {PG_ROOTS}/*/bin "
        f"or on PATH; run scripts/setup.sh, which installs the Debian `postgresql` package."
    )


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_run_user(argv: list[str]) -> list[str]:
    """Prefix ``argv`` with runuser when we are root; PostgreSQL will not run as root."""
    return ["runuser", "-u", RUN_USER, "--", *argv] if _is_root() else argv


def _ensure_run_user() -> pwd.struct_passwd:
    """The system user PostgreSQL runs as when we are root, created on first use."""
    try:
        return pwd.getpwnam(RUN_USER)
    except KeyError:
        pass
    argv = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
    if _group_exists(RUN_USER):
        argv += ["--gid", RUN_USER]
    try:
        base.run_checked([*argv, RUN_USER], f"creating system user {RUN_USER}", timeout=60)
    except ServiceError:
        if not _user_exists(RUN_USER):  # a concurrent `up` may have created it first
            raise
    return pwd.getpwnam(RUN_USER)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _assert_traversable(target: Path, user: pwd.struct_passwd) -> None:
    """ServiceError naming the first folder above ``target`` that ``user`` may not enter."""
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    for folder in [*reversed(target.parents), target]:
        mode = folder.stat()
        if mode.st_uid == user.pw_uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid in groups:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            raise ServiceError(
                f"PostgreSQL runs as user {user.pw_name} (initdb refuses root) but {folder} "
                f"(mode {stat.S_IMODE(mode.st_mode):04o}) does not let it through to {target}; "
                f"run `chmod o+x {folder}` or choose a home outside it."
            )


def _prepare_dir(home: Path) -> None:
    """Create the service folder; as root, hand it to the run user and prove it can reach it."""
    folder = _dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if not _is_root():
        return
    user = _ensure_run_user()
    os.chown(folder, user.pw_uid, user.pw_gid)
    if log_path(home).exists():
        os.chown(log_path(home), user.pw_uid, user.pw_gid)
    _assert_traversable(folder, user)


# --- credentials (the local secret store) --------------------------------------------------------


def _write_credentials(home: Path) -> str:
    password = secrets.token_urlsafe(32)
    payload = {"user": ADMIN_USER, "password": password, "created_at": base.utc_now()}
    base.write_json_atomic(credentials_path(home), payload, mode=0o600)
    return password


def _reset_hint(home: Path) -> str:
    return (
        f"If the cluster holds nothing you need, remove {_dir(home)} with `ledgerlane services reset` "
        f"and run `ledgerlane services up` again."
    )


# --- init ----------------------------------------------------------------------------------------


def _ensure_initialized(home: Path, progress: Progress) -> None:
    """Run initdb unless a completed cluster exists; refuse to touch a half-made one we cannot vouch for."""
    data, marker = data_dir(home), _dir(home) / INIT_MARKER
    if marker.exists():
        # Our marker proves the last init never finished, so nothing of value can be in there.
        progress(f"postgres: a previous init of {data} was interrupted; initialising it again")
        shutil.rmtree(data, ignore_errors=True)
        credentials_path(home).unlink(missing_ok=True)
    elif (data / "PG_VERSION").exists():
        postgres_password(home)  # a completed cluster must still have its secret
        return
    _assert_not_half_initialised(home)
    _initdb(home, progress)


def _assert_not_half_initialised(home: Path) -> None:
    data = data_dir(home)
    if data.exists() and not (data / "PG_VERSION").exists() and any(data.iterdir()):
        raise ServiceError(
            f"{data} is not empty but has no PG_VERSION, and no marker of an interrupted ledgerlane init: "
            f"it is a half-initialised or foreign PostgreSQL data folder, left untouched. {_reset_hint(home)}"
        )


def _initdb(home: Path, progress: Progress) -> None:
    folder, data = _dir(home), data_dir(home)
    (folder / INIT_MARKER).write_text(base.utc_now() + "\n", encoding="utf-8")
    password = _write_credentials(home)
    progress(f"postgres: initialising a new cluster in {data}")
    pwfile = folder / ".initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    try:
        if _is_root():
            user = pwd.getpwnam(RUN_USER)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        argv = [
            str(find_pg_bin() / "initdb"), "-D", str(data), "-U", ADMIN_USER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8", "--no-locale",
            "--no-sync",  # a throwaway cluster: skip initdb's fsync of every file
        ]
        base.run_checked(_as_run_user(argv), "initdb", timeout=180, cwd=folder)
    finally:
        pwfile.unlink(missing_ok=True)


def _finish_init(home: Path, port: int, progress: Progress) -> None:
    """Create the ledgerlane database, then drop the marker: from here on the cluster is precious."""
    marker = _dir(home) / INIT_MARKER
    if not marker.exists():
        return
    params = {**admin_dsn_params(home), "dbname": "postgres", "port": port}
    try:
        with psycopg.connect(**params, connect_timeout=5, autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
            if not exists:
                progress(f"postgres: creating database {DATABASE}")
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    except psycopg.Error as exc:
        detail = _redact(str(exc).strip(), params["password"])
        raise ServiceError(f"could not create database {DATABASE} on port {port}: {detail}") from None
    state = base.read_state(home, NAME)
    base.write_state(home, NAME, {**state, "initialized_at": base.utc_now()})
    marker.unlink()


# --- start, stop, status -------------------------------------------------------------------------


def _live_pid(home: Path, progress: Progress, *, clean: bool = True) -> int | None:
    """Our postmaster's pid: from our pid file, else from the postmaster.pid PostgreSQL wrote itself."""
    marker = str(data_dir(home))
    if clean:
        pid = base.read_live_pid(home, NAME, marker, progress)
    else:
        pid = _pid_from(base.pid_path(home, NAME))
        pid = pid if pid and base.is_ours(pid, marker) else None
    if pid is None:
        pid = _pid_from(data_dir(home) / "postmaster.pid")
        pid = pid if pid and base.is_ours(pid, marker) else None
    return pid


def _pid_from(path: Path) -> int | None:
    try:
        first = path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _choose_port(home: Path) -> int:
    state = base.read_state(home, NAME)
    recorded = state.get("port")
    port = recorded if isinstance(recorded, int) and base.is_port_free(recorded) else base.choose_port(PREFERRED_PORT)
    if port != recorded:
        base.write_state(home, NAME, {"created_at": base.utc_now(), **state, "port": port})
    return port


def _server_options(home: Path, port: int, progress: Progress) -> str:
    """postgres options for pg_ctl -o (run through a shell by pg_ctl, hence the quoting)."""
    sockets = _dir(home) / "run"
    if len(str(sockets / f".s.PGSQL.{port}")) > UNIX_SOCKET_MAX:
        progress(f"postgres: {sockets} is too long for a unix socket path; listening on TCP only")
        socket_dir = ""
    else:
        sockets.mkdir(mode=0o700, exist_ok=True)
        if _is_root():
            user = pwd.getpwnam(RUN_USER)
            os.chown(sockets, user.pw_uid, user.pw_gid)
        socket_dir = str(sockets)
    return f"-p {port} -c listen_addresses={LOCALHOST} -k {shlex.quote(socket_dir)}"


def preflight(home: Path) -> None:
    """Every check that needs no process: binaries, folder permissions, state file, data folder."""
    find_pg_bin()
    _prepare_dir(home)
    base.read_state(home, NAME)
    if not (_dir(home) / INIT_MARKER).exists():
        _assert_not_half_initialised(home)


def start(home: Path, progress: Progress) -> ServiceStatus:
    """Start (initialising on first use) and return a healthy status; a running cluster is reused."""
    preflight(home)
    pid = _live_pid(home, progress)
    if pid is not None and (_dir(home) / INIT_MARKER).exists():
        progress("postgres: stopping the cluster left running by an interrupted init")
        stop(home, progress)
        pid = None
    if pid is not None:
        base.write_pid(home, NAME, pid)
        current = status(home)
        if current.healthy:
            return current
        raise ServiceError(f"PostgreSQL (pid {pid}) runs but is not healthy: {current.detail}; see {log_path(home)}")
    _ensure_initialized(home, progress)
    port = _choose_port(home)
    progress(f"postgres: starting on {LOCALHOST}:{port}")
    _pg_ctl_start(home, port, progress)
    _finish_init(home, port, progress)
    current = status(home)
    if not current.healthy:
        raise ServiceError(f"PostgreSQL started but is not healthy: {current.detail}; see {log_path(home)}")
    return current


def _pg_ctl_start(home: Path, port: int, progress: Progress) -> None:
    data = data_dir(home)
    argv = [
        str(find_pg_bin(prefer_major=_data_major(home)) / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data),
        "-l", str(log_path(home)), "-o", _server_options(home, port, progress),
    ]
    try:
        base.run_checked(_as_run_user(argv), "pg_ctl start", timeout=90, cwd=_dir(home))
    except ServiceError as exc:
        raise ServiceError(f"{exc}\n--- last lines of {log_path(home)} ---\n{base.tail_file(log_path(home))}") from None
    pid = _pid_from(data / "postmaster.pid")
    if pid is None or not base.is_ours(pid, str(data)):
        raise ServiceError(f"pg_ctl reported success but no postmaster runs for {data}; see {log_path(home)}")
    base.write_pid(home, NAME, pid)


def _data_major(home: Path) -> str | None:
    """The PostgreSQL major version that made the cluster, so a newer install still starts it."""
    try:
        return (data_dir(home) / "PG_VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        return None


def stop(home: Path, progress: Progress) -> str:
    """Fast shutdown through pg_ctl, then make sure the postmaster is gone; "stopped" or "not running"."""
    pid = _live_pid(home, progress)
    if pid is None:
        return "not running"
    progress(f"postgres: stopping pid {pid}")
    try:
        pg_ctl = find_pg_bin(prefer_major=_data_major(home)) / "pg_ctl"
        argv = [str(pg_ctl), "stop", "-m", "fast", "-w", "-t", "30", "-D", str(data_dir(home))]
        base.run_checked(_as_run_user(argv), "pg_ctl stop", timeout=45, cwd=_dir(home))
    except (ServiceError, EnvironmentProblem) as exc:
        progress(f"postgres: pg_ctl stop did not finish ({str(exc).splitlines()[0]}); signalling pid {pid}")
    if base.is_alive(pid):
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to disconnect.
        base.terminate(pid, "PostgreSQL", timeout=15, first=signal.SIGINT)
    base.pid_path(home, NAME).unlink(missing_ok=True)
    return "stopped"


def status(home: Path) -> ServiceStatus:
    """Running, ours and answering ``select 1`` as the admin role; never raises for an unhealthy cluster."""
    pid, port, detail = None, None, "ok"
    try:
        port = base.read_state(home, NAME).get("port")
        pid = _live_pid(home, base.no_progress, clean=False)
        if not (data_dir(home) / "PG_VERSION").exists():
            detail = "not initialised; run `ledgerlane services up`"
        elif pid is None:
            detail = "not running; run `ledgerlane services up`"
        else:
            detail = _probe(home)
    except LedgerlaneError as exc:
        detail = str(exc)
    return ServiceStatus(
        name=NAME, healthy=detail == "ok", host=LOCALHOST, port=port, pid=pid, log_path=log_path(home),
        detail=detail, extra={"database": DATABASE, "user": ADMIN_USER},
    )


def _probe(home: Path) -> str:
    params = admin_dsn_params(home)
    try:
        with psycopg.connect(**params, connect_timeout=3) as conn:
            conn.execute("select 1").fetchone()
    except psycopg.Error as exc:
        return _redact(f"connect/select 1 failed: {exc}".strip(), params["password"])
    return "ok"


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def credentials_path(home: Path) -> Path:
    return postgres_credentials_path(home)


def admin_dsn_params(home: Path) -> dict[str, Any]:
    """Connection parameters for the local admin role; the password comes from the 0600 credentials file."""
    return postgres_admin_params(home)
