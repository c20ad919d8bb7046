"""The closure job: a run is complete only when its proof is (invariants 7, 8 and 9 of DESIGN.md).

    spark-submit jobs/submit.py close --run-id r-20261122-1
    ledgerlane close --run-id r-20261122-1

One closer per run (an exclusive-create lock in the evidence folder, S3 conditional writes in
production). It reads the Delta logs, the checkpoints, the bus as it is now, the receipts, the
certifications and the database (``facts.py``), proves every invariant (``proofs.py``), and writes the
bundle (``bundle.py``): copies of what it relied on, OpenLineage events, ``evidence.json``,
``report.html``, and last ``_COMPLETE`` (PASS, exit 0) or ``_FAILED`` (FAIL, exit 8). A run closed
PASS is never closed again: ``close`` then verifies the bundle and rewrites nothing.
"""

from __future__ import annotations

import sys
import time

from pyspark.sql import SparkSession

from common.bundle_store import BundleStore, open_store
from common.config import Settings
from common.errors import ClosureFailed, LedgerlaneError
from common.evidence import COMPLETE, FAIL, PASS, Bus, Certification, Evidence, Funnel, Partition, Stream, TableCommits
from common.jobspec import RUN_ID, Job, JobContext
from common.run import assert_run_id
from jobs.batch_context import code_version
from jobs.closure import bundle, facts as gathering, lineage, proofs, report, verify
from jobs.closure.facts import Facts


def partitions(facts: Facts) -> list[Partition]:
    if facts.basis is None:
        return []
    earliest = {p["partition"]: p for p in (facts.bus_now or {}).get("partitions", [])}
    sums: dict[int, dict[str, int]] = {}
    for receipt in facts.ingest_receipts:
        for part in receipt["partitions"] or []:
            total = sums.setdefault(part["partition"], dict.fromkeys(("received", "admitted", "duplicates",
                                                                      "quarantined"), 0))
            for name in total:
                total[name] += part[name]
    rows = []
    for p in facts.basis["partitions"]:
        n, committed = p["partition"], facts.committed.get(p["partition"])
        now = earliest.get(n, {})
        rows.append(Partition(partition=n, basis_start=p["start_offset"], basis_end=p["end_offset"],
                              earliest_now=now.get("start_offset"), latest_now=now.get("end_offset"),
                              committed=committed, lag=max(0, p["end_offset"] - (committed or p["start_offset"])),
                              **sums.get(n, dict.fromkeys(("received", "admitted", "duplicates", "quarantined"), 0))))
    return rows


def funnel(facts: Facts) -> Funnel:
    reasons: dict[str, int] = {}
    for receipt in facts.ingest_receipts:
        for reason, n in (receipt["quarantined_by_reason"] or {}).items():
            reasons[reason] = reasons.get(reason, 0) + n
    total = lambda key: sum(r[key] for r in facts.ingest_receipts)  # noqa: E731
    return Funnel(received=total("received"), admitted=total("admitted"), duplicates=total("duplicates"),
                  quarantined=total("quarantined"), quarantined_by_reason=reasons, decided=facts.decisions["rows"],
                  decisions_by_outcome=facts.decisions["by_outcome"], decisions_by_reason=facts.decisions["by_reason"],
                  actions_by_type=facts.actions["by_type"],
                  cases_opened=sum(1 for a in facts.actions["ids"]["open_case"] if facts.effects["cases"].get(a)),
                  cards_blocked=sum(1 for a in facts.actions["ids"]["block_card"] if facts.effects["controls"].get(a)))


def table_commits(facts: Facts) -> list[TableCommits]:
    grouped: dict[str, list] = {}
    for commit in facts.commits:
        grouped.setdefault(commit.table, []).append(commit)
    return [TableCommits(table=table, versions=[c.version for c in commits],
                         operations={op: sum(1 for c in commits if c.operation == op) for op in
                                     sorted({c.operation for c in commits})},
                         rows_written=sum(c.rows for c in commits),
                         txn_app_ids=sorted({a for c in commits for a in c.txn_app_ids}))
            for table, commits in sorted(grouped.items())]


def bus(facts: Facts) -> Bus | None:
    if facts.basis is None:
        return None
    now = facts.bus_now or {}
    return Bus(topic=facts.basis["topic"], epoch=(facts.epoch or {}).get("epoch"),
               cluster_id_basis=facts.basis["cluster_id"], cluster_id_now=now.get("cluster_id"),
               topic_id_basis=facts.basis["topic_id"], topic_id_now=now.get("topic_id"),
               basis_captured_at=facts.basis["captured_at"])


def evidence_of(facts: Facts, checks: list, settings: Settings, attempt: int, copied: list) -> Evidence:
    failed = [check.detail for check in checks if not check.ok]
    return Evidence(
        run_id=facts.run_id, verdict=FAIL if failed else PASS, reasons=failed, closed_at=bundle.closed_at(),
        attempt=attempt, closer=bundle.closer_name(), code_version=code_version(), config_digest=settings.digest(),
        bus=bus(facts), partitions=partitions(facts), funnel=funnel(facts),
        certifications=[Certification(product=name, table=row_table(facts, name), version=s.version, status=s.state,
                                      engine=row_engine(facts, name, s.version))
                        for name, s in facts.products.items()],
        tables=table_commits(facts),
        streams=[Stream(stream=s.name, checkpoint=s.checkpoint, app_id=s.app_id, offsets=s.offsets, commits=s.commits)
                 for s in facts.streams.values()],
        migrations_head=(facts.migrations or {}).get("head"), checks=checks, copied=copied)


def row_table(facts: Facts, product: str) -> str:
    from products import product as find_product

    return find_product(product).table.name


def row_engine(facts: Facts, product: str, version: int | None) -> str | None:
    rows = [r for r in facts.certifications if r["product"] == product and r["version"] == version]
    return rows[-1]["engine"] if rows else None


def close(spark: SparkSession, settings: Settings, run_id: str, *, store: BundleStore | None = None,
          progress=lambda _: None) -> dict:
    """Prove the run and write its bundle; a run already closed PASS is verified, never rewritten."""
    run_id = assert_run_id(run_id)
    store = store or open_store(settings.evidence_root)
    if store.exists(bundle.key(run_id, COMPLETE)):
        progress(f"run {run_id} is closed PASS already: verifying its bundle")
        return {**verify.verify(spark, settings, run_id, store=store), "rewritten": False}
    try:
        holder = bundle.acquire(store, run_id, bundle.closed_at())
    except OSError as exc:
        raise unwritable(settings, run_id, exc) from None
    try:
        started = time.monotonic()
        progress("reading Delta logs, checkpoints, the bus, receipts and the database")
        facts = gathering.gather(spark, settings, run_id)
        checks = proofs.run_all(facts)
        attempt = bundle.archive_previous_attempt(store, run_id)
        progress("writing the evidence bundle")
        evidence = write_bundle(spark, store, settings, facts, checks, attempt)
        if evidence.verdict == PASS:
            gathering.record_watermarks(spark, settings, run_id, facts.verified_through)
    except OSError as exc:
        raise unwritable(settings, run_id, exc) from None
    finally:
        bundle.release(store, run_id, holder)
    return {"run_id": run_id, "verdict": evidence.verdict, "reasons": evidence.reasons, "attempt": evidence.attempt,
            "bundle": f"{store.root.rstrip('/')}/{run_id}", "report": f"{store.root.rstrip('/')}/{run_id}/report.html",
            "checks": len(evidence.checks), "copied": len(evidence.copied), "rewritten": True,
            "seconds": round(time.monotonic() - started, 2)}


def unwritable(settings: Settings, run_id: str, exc: OSError) -> ClosureFailed:
    return ClosureFailed(f"run {run_id}: the evidence folder {settings.evidence_root} could not be written "
                         f"({exc.strerror or exc}); no verdict was recorded, the run stays open")


def write_bundle(spark: SparkSession, store: BundleStore, settings: Settings, facts: Facts, checks: list,
                 attempt: int) -> Evidence:
    copied = bundle.copy_commits(store, facts) + bundle.copy_checkpoints(spark, store, facts)
    copied += bundle.hash_certifications(store, facts)
    draft = evidence_of(facts, checks, settings, attempt, copied)
    found = lineage.events(facts, draft, settings.tables_root)
    copied += bundle.write_files(store, facts.run_id, lineage.serialized(found), "openlineage")
    evidence = draft.model_copy(update={"copied": copied})
    bundle.write_verdict(store, evidence, report.render(evidence))
    if settings.lineage.url:
        problem = lineage.send(settings.lineage.url, found)
        if problem:
            print(f"warning: OpenLineage events not sent to {settings.lineage.url}: {problem}", file=sys.stderr)
    return evidence


def describe(summary: dict) -> str:
    lines = [f"run {summary['run_id']}: {summary['verdict']}" + ("" if summary.get("rewritten", True)
                                                                else " (verified, not rewritten)")]
    lines += [f"  - {reason}" for reason in summary.get("reasons", [])]
    lines.append(f"  evidence {summary['bundle']}")
    lines.append(f"  report   {summary['report']}")
    return "\n".join(lines)


def exit_code(summary: dict) -> int:
    return 0 if summary["verdict"] == PASS else ClosureFailed.exit_code


def _run(ctx: JobContext, args: dict) -> dict:
    try:
        return close(ctx.spark, ctx.settings, args["run_id"], progress=ctx.progress)
    except LedgerlaneError:
        raise


JOB = Job(
    name="close", group="", module="jobs.closure", run=_run, describe=describe, exit_code=exit_code,
    summary="Prove a run from its Delta logs, checkpoints, the bus and the database; write its evidence bundle: "
            "PASS (_COMPLETE, exit 0) or FAIL (_FAILED with reasons, exit 8).",
    options=(RUN_ID,),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
