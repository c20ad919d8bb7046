"""Start, stop, inspect and reset all local services of one home; what ``ledgerlane services`` calls."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from services import base, kafka, postgres
from services.base import ServiceStatus

SERVICES = ("postgres", "kafka")


def _lock(home: Path, progress: Callable[[str], None]):
    # One `up`/`down`/`reset` per home at a time; `status` only reads and needs no lock.
    return base.file_lock(home / "services" / ".lock", progress, "another `ledgerlane services` command")


def up(home: Path, cache: Path, *, progress: Callable[[str], None] | None = None) -> dict[str, ServiceStatus]:
    """Start PostgreSQL and Kafka (initialising them on first use); running healthy services are reused."""
    report = progress or base.no_progress
    with _lock(home, report):
        postgres.preflight(home)  # PostgreSQL's own checks fail before the broker is launched
        # The broker's JVM boots while PostgreSQL initialises and starts; then wait for both.
        launched = kafka.launch(home, cache, report)
        pg_status = postgres.start(home, report)
        kafka_status = kafka.ready_or_relaunched(home, cache, launched, report)
    return {"postgres": pg_status, "kafka": kafka_status}


def down(home: Path) -> dict[str, str]:
    """Stop the processes named in this home's pid files: name -> "stopped" | "not running"."""
    if not (home / "services").is_dir():
        return {name: "not running" for name in SERVICES}
    results: dict[str, str] = {}
    with _lock(home, base.no_progress):
        results["kafka"] = kafka.stop(home, base.no_progress)
        results["postgres"] = postgres.stop(home, base.no_progress)
    return {name: results[name] for name in SERVICES}


def status(home: Path) -> dict[str, ServiceStatus]:
    """Health of every service; an unhealthy or broken one is reported in its ``detail``, not raised."""
    return {"postgres": postgres.status(home), "kafka": kafka.status(home)}


def reset(home: Path, *, progress: Callable[[str], None] | None = None) -> dict[str, str]:
    """Stop the services and delete their data under ``<home>/services`` (not the shared jar cache)."""
    report = progress or base.no_progress
    stopped = down(home)
    with _lock(home, report):
        for name in SERVICES:
            folder = base.service_dir(home, name)
            if folder.exists():
                report(f"{name}: deleting {folder}")
                shutil.rmtree(folder)
    return {name: f"{state}, data deleted" for name, state in stopped.items()}


__all__ = ["SERVICES", "ServiceStatus", "up", "down", "status", "reset"]
