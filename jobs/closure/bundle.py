"""Writing and reading a run's evidence bundle: the copies it relies on, evidence.json, the report, the
OpenLineage events, and last the verdict marker, through one ``BundleStore`` (a folder, or S3).

Layout under ``<evidence_root>/<run_id>/``::

    _LOCK                      the closer holding the run (exclusive create; removed when it is done)
    evidence.json              the Evidence model (common/evidence.py)
    report.html                the same, for people (self-contained)
    copies/delta_log/<table>/<version>.json     every Delta commit of the run, byte for byte
    copies/checkpoints/<stream>/{offsets,commits}/<N>   the checkpoint entries of the run's batches
    certifications/<product>-v<N>.json         written by certify; hashed here, not copied
    openlineage/<job>-<state>.json             OpenLineage run events
    _COMPLETE                  SHA-256 of evidence.json (PASS only; exclusive create, never rewritten)
    _FAILED                    the reasons (FAIL); a later attempt moves it to attempts/<n>/
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone

from pyspark.sql import SparkSession

from common import fs
from common.bundle_store import AlreadyExists, BundleStore
from common.errors import LockHeld
from common.faults import crash_if_requested
from common.evidence import COMPLETE, EVIDENCE_FILE, FAILED, LOCK, REPORT_FILE, CopiedFile, Evidence, sha256_of
from jobs.closure.facts import Facts

LEASE = timedelta(minutes=30)   # a closer killed mid-way blocks the run this long, no longer
ATTEMPT_FILES = (EVIDENCE_FILE, REPORT_FILE, FAILED)


def key(run_id: str, name: str) -> str:
    return f"{run_id}/{name}"


# ---- the single-writer lock ------------------------------------------------------------------------------

def closer_name() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def acquire(store: BundleStore, run_id: str, now: datetime) -> dict:
    """Take the run's closure lock or raise LockHeld naming the holder and when it took the lock.

    A holder whose lease ran out (a killed closer) is replaced, once; contention is never waited out.
    """
    holder = {"closer": closer_name(), "pid": os.getpid(), "host": socket.gethostname(),
              "since": now.isoformat(timespec="seconds"), "lease_until": (now + LEASE).isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            store.create_exclusive(key(run_id, LOCK), json.dumps(holder).encode())
            return holder
        except AlreadyExists:
            current = _holder(store, run_id)
            if not (current and is_stale(current, now)):
                who = f"{current['closer']} since {current['since']}" if current else "another closer"
                raise LockHeld(f"run {run_id} is being closed by {who}; one closer per run at a time "
                               "(the lock is released when it finishes, or after its lease of "
                               f"{int(LEASE.total_seconds() // 60)} minutes)") from None
            store.delete(key(run_id, LOCK))
    raise LockHeld(f"run {run_id}: the closure lock changed hands while it was being taken; retry")


def is_stale(holder: dict, now: datetime) -> bool:
    """A lease that ran out, or a closer on this very host whose process is gone (killed, crashed)."""
    if datetime.fromisoformat(holder["lease_until"]) < now:
        return True
    return holder.get("host") == socket.gethostname() and not pid_alive(holder.get("pid"))


def pid_alive(pid: int | None) -> bool:
    if not isinstance(pid, int):
        return True   # unknown: assume alive, wait for the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(store: BundleStore, run_id: str) -> dict | None:
    try:
        return json.loads(store.read(key(run_id, LOCK)))
    except (FileNotFoundError, ValueError, KeyError):
        return None
    except Exception:  # an object store's "not found" has its own type; the lock is then simply gone
        return None


def release(store: BundleStore, run_id: str, holder: dict) -> None:
    try:
        if _holder(store, run_id) == holder:
            store.delete(key(run_id, LOCK))
    except OSError:
        pass   # the lock file is gone or its folder unwritable: nothing is held either way


# ---- attempts -------------------------------------------------------------------------------------------

def archive_previous_attempt(store: BundleStore, run_id: str) -> int:
    """A run whose closure failed may be closed again; the earlier attempt's files are kept, moved aside."""
    previous = sorted({int(k.split("/")[2]) for k in store.list(key(run_id, "attempts/")) if k.count("/") >= 3})
    number = (previous[-1] + 1) if previous else 1
    if not store.exists(key(run_id, FAILED)):
        return number
    for name in ATTEMPT_FILES:
        if store.exists(key(run_id, name)):
            store.write(key(run_id, f"attempts/{number}/{name}"), store.read(key(run_id, name)))
            store.delete(key(run_id, name))
    return number + 1


# ---- copies ---------------------------------------------------------------------------------------------

def copy_commits(store: BundleStore, facts: Facts) -> list[CopiedFile]:
    copied = []
    for commit in facts.commits:
        data = commit.text.encode()
        path = f"copies/delta_log/{commit.table}/{commit.version:020d}.json"
        store.write(key(facts.run_id, path), data)
        copied.append(CopiedFile(role="delta_log", source=f"{commit.path}/_delta_log/{commit.version:020d}.json",
                                 path=path, sha256=sha256_of(data), bytes=len(data)))
    return copied


def copy_checkpoints(spark: SparkSession, store: BundleStore, facts: Facts) -> list[CopiedFile]:
    copied = []
    for stream in facts.streams.values():
        retained = {"offsets": set(stream.offsets), "commits": set(stream.commits)}
        for log, batches in retained.items():
            for batch in sorted(set(stream.run_batches) & batches):
                source = f"{stream.checkpoint}/{log}/{batch}"
                data = fs.read_text(spark, source).encode()
                path = f"copies/checkpoints/{stream.name}/{log}/{batch}"
                store.write(key(facts.run_id, path), data)
                copied.append(CopiedFile(role="checkpoint", source=source, path=path, sha256=sha256_of(data),
                                         bytes=len(data)))
    return copied


def hash_certifications(store: BundleStore, facts: Facts) -> list[CopiedFile]:
    """The certify job wrote its results into this run's evidence folder already: listed with their hashes."""
    listed = []
    for path in sorted(store.list(key(facts.run_id, "certifications/"))):
        data = store.read(path)
        listed.append(CopiedFile(role="certification", source=path, path=path.split("/", 1)[1], sha256=sha256_of(data),
                                 bytes=len(data)))
    return listed


def write_files(store: BundleStore, run_id: str, files: dict[str, bytes], role: str) -> list[CopiedFile]:
    for path, data in files.items():
        store.write(key(run_id, path), data)
    return [CopiedFile(role=role, source=path, path=path, sha256=sha256_of(data), bytes=len(data))
            for path, data in files.items()]


# ---- the verdict ------------------------------------------------------------------------------------------

def write_verdict(store: BundleStore, evidence: Evidence, report: str) -> str:
    """evidence.json and report.html, then the marker; the marker is written last, and only once."""
    body = evidence.to_json().encode()
    store.write(key(evidence.run_id, EVIDENCE_FILE), body)
    store.write(key(evidence.run_id, REPORT_FILE), report.encode())
    crash_if_requested("close.before_marker", 0)
    digest = sha256_of(body)
    if evidence.verdict == "PASS":
        store.create_exclusive(key(evidence.run_id, COMPLETE), f"{digest}  {EVIDENCE_FILE}\n".encode())
    else:
        store.write(key(evidence.run_id, FAILED), ("\n".join(evidence.reasons) + "\n").encode())
    return digest


def closed_at() -> datetime:
    return datetime.now(timezone.utc)
