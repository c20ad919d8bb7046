"""``ledgerlane evidence verify``: recheck a closed run's bundle, long after the run.

Needs no service, checkpoint or topic: it rechecks the marker's hash of evidence.json, the hash of
every copied file, and, where the Delta tables still exist, that the live log still says what the
bundle copied and that no append-only table was rewritten since. Tampering or drift is a problem
named in plain words (exit 8).
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from common import catalog, delta, fs, tables
from common.bundle_store import BundleStore, open_store
from common.config import Settings
from common.errors import ClosureFailed
from common.evidence import COMPLETE, EVIDENCE_FILE, FAILED, PASS, Evidence, sha256_of
from common.run import assert_run_id
from jobs.closure.facts import REWRITING_OPERATIONS


def load(store: BundleStore, run_id: str) -> Evidence:
    if not store.exists(f"{run_id}/{EVIDENCE_FILE}"):
        raise ClosureFailed(f"run {run_id} has no evidence bundle under {store.root} (it was never closed)")
    return Evidence.model_validate_json(store.read(f"{run_id}/{EVIDENCE_FILE}"))


def marker_problems(store: BundleStore, run_id: str, evidence: Evidence, body: bytes) -> list[str]:
    if evidence.verdict == PASS:
        if not store.exists(f"{run_id}/{COMPLETE}"):
            return ["evidence.json says PASS but the _COMPLETE marker is missing"]
        recorded = store.read(f"{run_id}/{COMPLETE}").decode().split()[0]
        if recorded != sha256_of(body):
            return [f"evidence.json changed after closure: _COMPLETE holds {recorded[:12]}…, the file hashes to "
                    f"{sha256_of(body)[:12]}…"]
        return []
    return [] if store.exists(f"{run_id}/{FAILED}") else ["evidence.json says FAIL but the _FAILED marker is missing"]


def copy_problems(store: BundleStore, run_id: str, evidence: Evidence) -> list[str]:
    problems = []
    for copied in evidence.copied:
        path = f"{run_id}/{copied.path}"
        if not store.exists(path):
            problems.append(f"{copied.path} is missing from the bundle")
        elif sha256_of(store.read(path)) != copied.sha256:
            problems.append(f"{copied.path} was changed after closure (its SHA-256 no longer matches)")
    return problems


def live_log_problems(spark: SparkSession, store: BundleStore, run_id: str, evidence: Evidence) -> list[str]:
    """Where the tables still exist: the live log agrees with the copies, and nothing was rewritten since."""
    problems = []
    for copied in (c for c in evidence.copied if c.role == "delta_log"):
        if fs.exists(spark, copied.source) and fs.read_text(spark, copied.source).encode() != store.read(
                f"{run_id}/{copied.path}"):
            problems.append(f"the live Delta log entry {copied.source} differs from the copy in the bundle")
    for table in evidence.tables:
        path = table_path(evidence, table.table)
        if path is None or not tables.exists(spark, path) or not catalog.spec(table.table).append_only:
            continue
        for version in (v for v in delta.commit_versions(spark, path) if v > table.versions[-1]):
            _, actions = delta.read_commit(spark, path, version)
            operation = delta.commit_info(actions).get("operation", "")
            if operation.upper() in REWRITING_OPERATIONS or any("remove" in a for a in actions):
                problems.append(f"{table.table} was rewritten after closure: version {version} is {operation}")
    return problems


def table_path(evidence: Evidence, table: str) -> str | None:
    """Where a table lived at closure, from the source of its copied log entries."""
    for copied in evidence.copied:
        if copied.role == "delta_log" and copied.path.startswith(f"copies/delta_log/{table}/"):
            return copied.source.rsplit("/_delta_log/", 1)[0]
    return None


def verify(spark: SparkSession | None, settings: Settings, run_id: str, *, store: BundleStore | None = None) -> dict:
    run_id = assert_run_id(run_id)
    store = store or open_store(settings.evidence_root)
    evidence = load(store, run_id)
    body = store.read(f"{run_id}/{EVIDENCE_FILE}")
    problems = marker_problems(store, run_id, evidence, body) + copy_problems(store, run_id, evidence)
    if spark is not None:
        problems += live_log_problems(spark, store, run_id, evidence)
    return {"run_id": run_id, "verdict": evidence.verdict if not problems else "FAIL", "recorded": evidence.verdict,
            "reasons": problems or list(evidence.reasons), "verified": not problems,
            "bundle": f"{store.root.rstrip('/')}/{run_id}", "report": f"{store.root.rstrip('/')}/{run_id}/report.html",
            "files_checked": len(evidence.copied)}
