"""The local PostgreSQL and Kafka services: real processes, started and stopped by the project itself.

One home is brought up once for the module (seeded with stale pid files, interrupted inits and busy
preferred ports, so the happy path also proves recovery); the other bad-input cases start nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from common.errors import EnvironmentProblem, ServiceError
from common.home import resolve_cache
from services import base, kafka, manager, postgres

REPO_ROOT = Path(__file__).resolve().parents[1]
# $LEDGERLANE_CACHE if set, else <repo>/.ledgerlane/cache: the broker jars are resolved once, ever.
CACHE = resolve_cache(REPO_ROOT / ".ledgerlane")


def make_home() -> Path:
    # pytest's tmp_path is 0700, which the runuser'd PostgreSQL could not traverse.
    home = Path(tempfile.mkdtemp(prefix="ledgerlane-svc-"))
    home.chmod(0o755)
    return home


@pytest.fixture
def home():
    path = make_home()
    yield path
    manager.down(path)
    shutil.rmtree(path, ignore_errors=True)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def hold_port(port: int) -> socket.socket | None:
    """Listen on ``port`` so a service has to pick another one; None when something already does."""
    if not base.is_port_free(port):
        return None
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((base.LOCALHOST, port))
    holder.listen()
    return holder


def seed_troubles(home: Path) -> None:
    """Leftovers of a crashed earlier run: stale pid files and inits that never finished."""
    for name, pid in (("postgres", os.getpid()), ("kafka", dead_pid())):  # a foreign live pid, a dead one
        base.service_dir(home, name).mkdir(parents=True)
        base.write_pid(home, name, pid)
    (postgres.data_dir(home)).mkdir()
    (postgres.data_dir(home) / "half-written").write_text("x")
    (base.service_dir(home, "postgres") / postgres.INIT_MARKER).write_text("interrupted")
    kafka.data_dir(home).mkdir()
    (kafka.data_dir(home) / "bootstrap.checkpoint").write_text("x")
    (base.service_dir(home, "kafka") / kafka.FORMAT_MARKER).write_text("interrupted")


def processes_mentioning(home: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and any(str(home) in arg for arg in base.cmdline(int(proc.name))):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def running():
    home = make_home()
    seed_troubles(home)
    held = [hold_port(port) for port in (postgres.PREFERRED_PORT, kafka.PREFERRED_PORT)]
    messages: list[str] = []
    try:
        first = manager.up(home, CACHE, progress=messages.append)
    finally:
        for holder in held:
            if holder:
                holder.close()
    yield SimpleNamespace(home=home, first=first, messages=messages)
    manager.down(home)
    shutil.rmtree(home, ignore_errors=True)


# --- the running home ----------------------------------------------------------------------------


@pytest.mark.slow
def test_up_reports_healthy_services_reachable_at_their_status(running):
    current = manager.status(running.home)
    assert all(st.healthy for st in current.values()), {n: st.detail for n, st in current.items()}
    pg, kf = current["postgres"], current["kafka"]
    assert (pg.host, kf.host) == ("127.0.0.1", "127.0.0.1")
    assert pg.extra == {"database": "ledgerlane", "user": "ledgerlane_admin"}
    assert kf.extra["bootstrap"] == f"127.0.0.1:{kf.port}" == kafka.bootstrap_servers(running.home)
    assert kf.extra["cluster_id"] == base.read_state(running.home, "kafka")["cluster_id"]
    params = postgres.admin_dsn_params(running.home)
    assert params["port"] == pg.port
    with psycopg.connect(**params, connect_timeout=5) as conn:
        assert conn.execute("select current_database(), current_user").fetchone() == ("ledgerlane", "ledgerlane_admin")


@pytest.mark.slow
def test_busy_preferred_ports_make_up_choose_and_record_others(running):
    pg, kf = running.first["postgres"], running.first["kafka"]
    assert pg.port != postgres.PREFERRED_PORT and kf.port != kafka.PREFERRED_PORT
    assert base.read_state(running.home, "postgres")["port"] == pg.port
    assert base.read_state(running.home, "kafka")["port"] == kf.port


@pytest.mark.slow
def test_stale_pid_files_are_removed_and_reported(running):
    stale = [m for m in running.messages if "stale pid file" in m]
    assert sorted(m.split(":")[0] for m in stale) == ["kafka", "postgres"]
    assert any("a different program" in m for m in stale) and any("not running" in m for m in stale)


@pytest.mark.slow
def test_inits_interrupted_under_our_marker_are_redone(running):
    assert any(m.startswith("postgres: a previous init") for m in running.messages)
    assert any(m.startswith("kafka: a previous format") for m in running.messages)
    assert not (base.service_dir(running.home, "postgres") / postgres.INIT_MARKER).exists()
    assert not (base.service_dir(running.home, "kafka") / kafka.FORMAT_MARKER).exists()
    assert not (postgres.data_dir(running.home) / "half-written").exists()


@pytest.mark.slow
def test_second_up_is_idempotent(running):
    before = manager.status(running.home)   # not running.first: another test may have restarted them
    messages: list[str] = []
    second = manager.up(running.home, CACHE, progress=messages.append)
    assert {n: (st.port, st.pid) for n, st in second.items()} == {n: (st.port, st.pid) for n, st in before.items()}
    assert messages == []


@pytest.mark.slow
def test_password_stays_in_the_0600_credentials_file(running):
    path = postgres.credentials_path(running.home)
    assert path.stat().st_mode & 0o777 == 0o600
    password = json.loads(path.read_text())["password"]
    statuses = json.dumps({n: st.to_dict() for n, st in manager.status(running.home).items()})
    kafka_dir = base.service_dir(running.home, "kafka")
    logs = [postgres.log_path(running.home), kafka.log_path(running.home), kafka_dir / "stdout.log"]
    for text in [statuses, *running.messages, *(p.read_text(errors="replace") for p in logs)]:
        assert password not in text


@pytest.mark.slow
def test_down_leaves_nothing_and_restart_keeps_ports_identity_and_data(running):
    home, before = running.home, manager.status(running.home)
    with psycopg.connect(**postgres.admin_dsn_params(home), autocommit=True) as conn:
        conn.execute("create table kept (id int)")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers(home)})  # must outlive its futures
    admin.create_topics([NewTopic("kept", num_partitions=2)])["kept"].result(timeout=30)

    assert manager.down(home) == {"postgres": "stopped", "kafka": "stopped"}
    assert not any(base.is_alive(st.pid) for st in before.values())
    assert processes_mentioning(home) == []
    assert manager.down(home) == {"postgres": "not running", "kafka": "not running"}
    with pytest.raises(ServiceError, match="no Kafka broker runs"):
        kafka.bootstrap_servers(home)

    after = manager.up(home, CACHE)
    assert {n: st.port for n, st in after.items()} == {n: st.port for n, st in before.items()}
    assert after["kafka"].extra["cluster_id"] == before["kafka"].extra["cluster_id"]
    with psycopg.connect(**postgres.admin_dsn_params(home)) as conn:
        assert conn.execute("select to_regclass('kept') is not null").fetchone() == (True,)
    topics = AdminClient({"bootstrap.servers": kafka.bootstrap_servers(home)}).list_topics(timeout=10).topics
    assert len(topics["kept"].partitions) == 2


# --- bad input that must fail before anything starts ----------------------------------------------


def test_half_initialised_postgres_data_without_our_marker_is_refused(home):
    postgres.data_dir(home).mkdir(parents=True)
    (postgres.data_dir(home) / "base").mkdir()
    with pytest.raises(ServiceError, match=rf"{postgres.data_dir(home)} is not empty but has no PG_VERSION.*reset"):
        manager.up(home, CACHE)
    assert (postgres.data_dir(home) / "base").exists()
    assert processes_mentioning(home) == []


def test_kafka_log_dir_without_meta_properties_or_marker_is_refused(home):
    kafka.data_dir(home).mkdir(parents=True)
    (kafka.data_dir(home) / "bootstrap.checkpoint").write_text("x")
    with pytest.raises(ServiceError, match=rf"{kafka.data_dir(home)} is not empty but has no meta.properties"):
        manager.up(home, CACHE)
    assert (kafka.data_dir(home) / "bootstrap.checkpoint").exists()
    assert processes_mentioning(home) == []


@pytest.mark.parametrize("name", ["postgres", "kafka"])
def test_corrupt_state_file_is_named(home, name):
    state = base.service_dir(home, name) / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"port": 55')
    with pytest.raises(ServiceError, match=rf"{state} is not valid JSON"):
        manager.up(home, CACHE)
    assert processes_mentioning(home) == []
    current = manager.status(home)[name]
    assert not current.healthy and str(state) in current.detail


def test_missing_java_is_an_environment_problem(home, monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match="no Java found"):
        manager.up(home, CACHE)
    assert processes_mentioning(home) == []


def test_old_java_or_empty_java_home_is_an_environment_problem(monkeypatch, tmp_path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.22" 2024-01-16\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match="is Java 11; ledgerlane needs Java 17"):
        base.assert_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(EnvironmentProblem, match="has no executable bin/java"):
        base.assert_java()


def test_missing_maven_or_postgres_binaries_are_environment_problems(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match=r"Apache Maven \(`mvn`\) is not on PATH"):
        kafka.ensure_jars(tmp_path / "empty-cache", base.no_progress)
    monkeypatch.setattr(postgres, "PG_ROOTS", tmp_path / "no-postgresql")
    with pytest.raises(EnvironmentProblem, match="scripts/setup.sh"):
        postgres.find_pg_bin()


def test_choose_port_skips_a_port_in_use():
    port = base.choose_port(45000)
    holder = hold_port(port)
    try:
        assert not base.is_port_free(port)
        other = base.choose_port(port)
        assert other != port and base.is_port_free(other)
    finally:
        holder.close()


def test_down_cleans_stale_pid_files_and_touches_no_foreign_process(home):
    for name in manager.SERVICES:
        base.service_dir(home, name).mkdir(parents=True)
        base.write_pid(home, name, os.getpid())  # alive, but not ours: must survive
    assert manager.down(home) == {"postgres": "not running", "kafka": "not running"}
    assert not any(base.pid_path(home, name).exists() for name in manager.SERVICES)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the ledgerlane-pg user")
def test_home_the_postgres_user_cannot_traverse_is_named():
    parent = Path(tempfile.mkdtemp(prefix="ledgerlane-svc-"))  # mode 0700: closed to other users
    try:
        home = parent / "home"
        home.mkdir()
        with pytest.raises(ServiceError, match=rf"but {parent} \(mode 0700\) does not let it through"):
            manager.up(home, CACHE)
        assert processes_mentioning(home) == []
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
def test_a_port_taken_after_it_was_chosen_makes_the_broker_start_again_on_new_ports(home, monkeypatch):
    """Between choosing a free port and the broker's JVM binding it, another process can take it (an
    outgoing connection's ephemeral port, another home's broker); up must not fail for that."""
    taken = base.choose_port(kafka.PREFERRED_PORT + 100)
    holder = hold_port(taken)
    chosen = kafka._state_with_ports
    calls = []

    def first_choice_is_taken(where: Path) -> dict:
        state = chosen(where)
        calls.append(state["port"])
        if len(calls) == 1:   # the check said free; by the time the broker binds, it is not
            state = {**state, "port": taken}
            base.write_state(where, kafka.NAME, state)
        return state

    monkeypatch.setattr(kafka, "_state_with_ports", first_choice_is_taken)
    messages: list[str] = []
    try:
        started = manager.up(home, CACHE, progress=messages.append)
    finally:
        holder.close()

    assert started["kafka"].healthy and started["kafka"].port != taken
    assert len(calls) == 2 and any("starting on new ports" in m for m in messages), messages
