"""A single-node KRaft Kafka broker under ``<home>/services/kafka``, run from the official Apache jars.

The jars are resolved once per cache with Maven (``kafka-broker.pom.xml``); later starts need no
network. Cluster id and ports are kept in ``state.json`` so restarts of one home keep their identity.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from common.errors import EnvironmentProblem, LedgerlaneError, ServiceError
from services import base
from common.local_services import kafka_bootstrap, kafka_properties_path
from services.base import LOCALHOST, Progress, ServiceStatus

NAME = "kafka"
KAFKA_VERSION = "3.9.1"
PREFERRED_PORT = 59092
PREFERRED_CONTROLLER_PORT = 59093
POM = Path(__file__).with_name("kafka-broker.pom.xml")
FORMAT_MARKER = ".format-incomplete"
READY_TIMEOUT_S = 90.0
# The ports are checked free when chosen and bound seconds later, when the JVM is up; in between another
# process can take one (an outgoing connection's ephemeral port, another home's broker starting).
BIND_ATTEMPTS = 3
HEAP = "-Xmx512m"

# librdkafka reports every refused connection while the broker boots; probes judge health themselves.
_QUIET = logging.getLogger("ledgerlane.services.kafka.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _dir(home: Path) -> Path:
    return base.service_dir(home, NAME)


def data_dir(home: Path) -> Path:
    return _dir(home) / "data"


def log_path(home: Path) -> Path:
    return _dir(home) / "server.log"


def _properties_path(home: Path) -> Path:
    return kafka_properties_path(home)


# --- jars ----------------------------------------------------------------------------------------


def lib_dir(cache: Path) -> Path:
    return cache / f"kafka-{KAFKA_VERSION}" / "lib"


def _resolved_marker(cache: Path) -> Path:
    return cache / f"kafka-{KAFKA_VERSION}" / "resolved.json"


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def are_jars_complete(cache: Path) -> bool:
    """The marker written after a successful resolve exists, matches the pom, and every jar is there."""
    try:
        marker = json.loads(_resolved_marker(cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    jars = marker.get("jars") or []
    lib = lib_dir(cache)
    return marker.get("pom_sha256") == _pom_digest() and bool(jars) and all((lib / jar).is_file() for jar in jars)


def ensure_jars(cache: Path, progress: Progress) -> Path:
    """The broker's classpath folder, resolving it with Maven only when missing or incomplete."""
    if are_jars_complete(cache):
        return lib_dir(cache)
    mvn = shutil.which("mvn")
    if not mvn:
        raise EnvironmentProblem(
            f"Apache Maven (`mvn`) is not on PATH and the Kafka {KAFKA_VERSION} jars are not yet in "
            f"{lib_dir(cache)}; install Maven (scripts/setup.sh does this) so they can be resolved once."
        )
    with base.file_lock(cache / f"kafka-{KAFKA_VERSION}" / ".lock", progress, "resolving Kafka jars"):
        if not are_jars_complete(cache):  # another process may have finished while we waited
            _resolve_jars(mvn, cache, progress)
    return lib_dir(cache)


def _resolve_jars(mvn: str, cache: Path, progress: Progress) -> None:
    lib = lib_dir(cache)
    partial = lib.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    progress(f"kafka: resolving Apache Kafka {KAFKA_VERSION} jars with Maven into {lib} (first run only)")
    argv = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={partial}",
        "-DincludeScope=runtime", f"-Dmaven.repo.local={cache / 'm2'}",
    ]
    env = {**os.environ, "JAVA_HOME": os.environ.get("JAVA_HOME") or str(base.assert_java().resolve().parents[1])}
    base.run_checked(argv, "Maven dependency resolution for the Kafka broker", timeout=1200, env=env)
    jars = sorted(path.name for path in partial.glob("*.jar"))
    if not any(name.startswith(f"kafka_2.13-{KAFKA_VERSION}") for name in jars):
        raise ServiceError(f"Maven finished but {partial} holds no kafka_2.13-{KAFKA_VERSION} jar; found {jars}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    marker = {"pom_sha256": _pom_digest(), "jars": jars, "resolved_at": base.utc_now()}
    base.write_json_atomic(_resolved_marker(cache), marker)


# --- configuration and format --------------------------------------------------------------------


def new_cluster_id() -> str:
    """A KRaft cluster id in Kafka's own ``Uuid`` format (URL-safe base64 of 16 random bytes)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):  # Kafka avoids these because they read as command-line flags
            return text


def _state_with_ports(home: Path) -> dict[str, Any]:
    """State with a cluster id and two free ports: the recorded ones while free, new ones otherwise."""
    state = base.read_state(home, NAME)
    port, cport = state.get("port"), state.get("controller_port")
    if not (isinstance(port, int) and port != cport and base.is_port_free(port)):
        port = base.choose_port(PREFERRED_PORT, avoid={cport} if isinstance(cport, int) else set())
    if not (isinstance(cport, int) and cport != port and base.is_port_free(cport)):
        cport = base.choose_port(PREFERRED_CONTROLLER_PORT, avoid={port})
    cluster_id = state.get("cluster_id") or _cluster_id_on_disk(home) or new_cluster_id()
    updated = {"created_at": base.utc_now(), **state, "port": port, "controller_port": cport, "cluster_id": cluster_id}
    if updated != state:
        base.write_state(home, NAME, updated)
    return updated


def _cluster_id_on_disk(home: Path) -> str | None:
    meta = data_dir(home) / "meta.properties"
    if not meta.exists():
        return None
    for line in meta.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def _write_config(home: Path, state: dict[str, Any]) -> None:
    port, cport = state["port"], state["controller_port"]
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOCALHOST}:{cport}",
        "listeners": f"PLAINTEXT://{LOCALHOST}:{port},CONTROLLER://{LOCALHOST}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{LOCALHOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir(home)),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
    }
    text = "".join(f"{key}={value}\n" for key, value in properties.items())
    _properties_path(home).write_text("# written by ledgerlane on every start\n" + text, encoding="utf-8")
    log4j = [
        "log4j.rootLogger=INFO, file",
        "log4j.appender.file=org.apache.log4j.FileAppender",
        f"log4j.appender.file.File={log_path(home)}",
        "log4j.appender.file.Append=true",
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
    ]
    (_dir(home) / "log4j.properties").write_text("\n".join(log4j) + "\n", encoding="utf-8")


def _java_argv(java: Path, lib: Path, home: Path, main_class: str) -> list[str]:
    return [
        str(java), HEAP, "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{_dir(home) / 'log4j.properties'}",
        "-cp", f"{lib}/*", main_class,
    ]


def _ensure_formatted(home: Path, java: Path, lib: Path, state: dict[str, Any], progress: Progress) -> None:
    """Format the log dir once; re-format only when our marker proves the last format never finished."""
    data, marker = data_dir(home), _dir(home) / FORMAT_MARKER
    if marker.exists():
        progress(f"kafka: a previous format of {data} was interrupted; formatting it again")
        shutil.rmtree(data, ignore_errors=True)
    elif (data / "meta.properties").exists():
        _assert_same_cluster(home, state)
        return
    elif data.exists() and any(data.iterdir()):
        raise ServiceError(
            f"{data} is not empty but has no meta.properties, and no marker of an interrupted ledgerlane "
            f"format: it is a half-initialised or foreign Kafka log folder, left untouched. If it holds "
            f"nothing you need, remove it with `ledgerlane services reset` and run `ledgerlane services up`."
        )
    marker.write_text(base.utc_now() + "\n", encoding="utf-8")
    progress(f"kafka: formatting {data} for cluster {state['cluster_id']}")
    argv = [*_java_argv(java, lib, home, "kafka.tools.StorageTool"), "format", "-t", state["cluster_id"],
            "-c", str(_properties_path(home))]
    base.run_checked(argv, "kafka StorageTool format", timeout=120, cwd=_dir(home))
    base.write_state(home, NAME, {**state, "formatted_at": base.utc_now()})
    marker.unlink()


def _assert_same_cluster(home: Path, state: dict[str, Any]) -> None:
    on_disk = _cluster_id_on_disk(home)
    if on_disk != state["cluster_id"]:
        raise ServiceError(
            f"{data_dir(home) / 'meta.properties'} belongs to cluster {on_disk} but "
            f"{_dir(home) / 'state.json'} records {state['cluster_id']}; set cluster_id in state.json to "
            f"{on_disk} if the data is the one you want."
        )


# --- launch, readiness, stop, status -------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """A broker that was started (or found running) and may still be booting."""

    pid: int
    started: float
    log_size: int = 0   # bytes in the broker's log when it was started: what it writes comes after


def _log_size(home: Path) -> int:
    path = log_path(home)
    return path.stat().st_size if path.exists() else 0


def _marker(home: Path) -> str:
    """The argument that identifies this home's broker in /proc/<pid>/cmdline."""
    return str(_properties_path(home))


def preflight(cache: Path, progress: Progress) -> tuple[Path, Path]:
    """Java and jars, before anything starts: (java, lib)."""
    java = base.assert_java()
    return java, ensure_jars(cache, progress)


def launch(home: Path, cache: Path, progress: Progress) -> Launch:
    """Start the broker detached (it outlives the CLI) unless ours already runs; does not wait."""
    _dir(home).mkdir(parents=True, exist_ok=True)
    base.read_state(home, NAME)  # a corrupt state file fails here, not as a readiness timeout later
    pid = base.read_live_pid(home, NAME, _marker(home), progress)
    if pid is not None:
        return Launch(pid=pid, started=time.monotonic())
    java, lib = preflight(cache, progress)
    state = _state_with_ports(home)
    _write_config(home, state)
    _ensure_formatted(home, java, lib, state, progress)
    progress(f"kafka: starting broker on {LOCALHOST}:{state['port']} (cluster {state['cluster_id']})")
    log_size = _log_size(home)
    argv = [*_java_argv(java, lib, home, "kafka.Kafka"), str(_properties_path(home))]
    pid = base.spawn_detached(argv, _dir(home) / "stdout.log", cwd=_dir(home))
    base.write_pid(home, NAME, pid)
    return Launch(pid=pid, started=time.monotonic(), log_size=log_size)


def wait_ready(home: Path, launched: Launch, progress: Progress, timeout: float = READY_TIMEOUT_S) -> ServiceStatus:
    """Probe the broker until it answers metadata requests, it dies, or ``timeout`` passes."""
    deadline = launched.started + timeout
    current = status(home)
    if not current.healthy:
        progress(f"kafka: waiting up to {timeout:.0f}s for the broker (pid {launched.pid}) to answer")
    while not current.healthy:
        if not base.is_alive(launched.pid):
            base.pid_path(home, NAME).unlink(missing_ok=True)
            error = PortTaken if _lost_its_port(home, launched) else ServiceError
            raise error(f"Kafka broker (pid {launched.pid}) exited during startup: {_logs_hint(home)}")
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"Kafka broker (pid {launched.pid}) not ready after {timeout:.0f}s ({current.detail}); "
                f"it is left running for inspection: {_logs_hint(home)}"
            )
        time.sleep(0.5)
        current = status(home)
    return current


class PortTaken(ServiceError):
    """The broker died because a port chosen free was taken before it could bind it."""


def _lost_its_port(home: Path, launched: Launch) -> bool:
    """Whether this start's part of the log says a listener could not bind (read at most 1 MiB of it)."""
    path = log_path(home)
    if not path.exists():
        return False
    with path.open("rb") as log:
        log.seek(launched.log_size if path.stat().st_size >= launched.log_size else 0)
        return b"Address already in use" in log.read(1 << 20)


def ready_or_relaunched(home: Path, cache: Path, launched: Launch, progress: Progress) -> ServiceStatus:
    """``wait_ready``; a broker whose port was taken before it bound is started again on new ports."""
    for _ in range(BIND_ATTEMPTS - 1):
        try:
            return wait_ready(home, launched, progress)
        except PortTaken:
            progress("kafka: a port was taken between choosing it and binding it; starting on new ports")
            launched = launch(home, cache, progress)
    return wait_ready(home, launched, progress)


def _logs_hint(home: Path) -> str:
    stdout = _dir(home) / "stdout.log"
    lines = base.tail_file(log_path(home), 400).splitlines()
    # An ERROR line plus the exception message that log4j prints on the line below it.
    errors = [f"{line}\n{nxt}" for line, nxt in zip(lines, [*lines[1:], ""]) if " ERROR " in line or " FATAL " in line]
    return (
        f"see {log_path(home)} and {stdout}\n--- last errors in {log_path(home).name} ---\n" + "\n".join(errors[-5:])
        + f"\n--- last lines of {stdout.name} ---\n{base.tail_file(stdout, 8)}"
    )


def start(home: Path, cache: Path, progress: Progress) -> ServiceStatus:
    """Launch and wait until ready; a healthy running broker is returned as is."""
    return ready_or_relaunched(home, cache, launch(home, cache, progress), progress)


def stop(home: Path, progress: Progress) -> str:
    """SIGTERM (Kafka's controlled shutdown), SIGKILL after a deadline; "stopped" or "not running"."""
    pid = base.read_live_pid(home, NAME, _marker(home), progress)
    if pid is None:
        return "not running"
    progress(f"kafka: stopping pid {pid}")
    base.terminate(pid, "Kafka broker", timeout=30)
    base.pid_path(home, NAME).unlink(missing_ok=True)
    return "stopped"


def status(home: Path) -> ServiceStatus:
    """Running, ours, and answering metadata for the cluster id we recorded; never raises."""
    pid, port, cluster_id, detail = None, None, None, "ok"
    try:
        state = base.read_state(home, NAME)
        port, cluster_id = state.get("port"), state.get("cluster_id")
        pid = _pid_if_ours(home)
        if not (data_dir(home) / "meta.properties").exists():
            detail = "not initialised; run `ledgerlane services up`"
        elif pid is None:
            detail = "not running; run `ledgerlane services up`"
        else:
            detail = _probe(port, cluster_id)
    except LedgerlaneError as exc:
        detail = str(exc)
    extra = {"bootstrap": f"{LOCALHOST}:{port}" if port else None, "cluster_id": cluster_id}
    return ServiceStatus(
        name=NAME, healthy=detail == "ok", host=LOCALHOST, port=port, pid=pid, log_path=log_path(home),
        detail=detail, extra=extra,
    )


def _pid_if_ours(home: Path) -> int | None:
    try:
        text = base.pid_path(home, NAME).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and base.is_ours(int(text), _marker(home)) else None


def _probe(port: int | None, cluster_id: str | None) -> str:
    if not isinstance(port, int) or not base.accepts_connections(port):
        return f"not accepting connections on {LOCALHOST}:{port} yet"
    admin = AdminClient({"bootstrap.servers": f"{LOCALHOST}:{port}", "logger": _QUIET, "socket.timeout.ms": 3000})
    try:
        metadata = admin.list_topics(timeout=3)
    except KafkaException as exc:
        return f"metadata request failed: {exc}"
    if metadata.cluster_id != cluster_id:
        return f"{LOCALHOST}:{port} answers for cluster {metadata.cluster_id}, expected {cluster_id}"
    return "ok"


def bootstrap_servers(home: Path) -> str:
    """``127.0.0.1:PORT`` of this home's running broker; ServiceError when it is not running."""
    return kafka_bootstrap(home)
