"""OpenLineage run events for a closed run, built with the official ``openlineage-python`` client.

One START and one COMPLETE (or FAIL) per job of the run, each naming the Delta tables it wrote at the
versions it wrote them (``datasetVersion``), the bus it read, and for data products the checker's
assertions (``dataQualityAssertions``). Written into the bundle; sent to ``lineage.url`` when configured.
"""

from __future__ import annotations

import uuid

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
from openlineage.client.facet_v2 import dataset_version_dataset as dv
from openlineage.client.serde import Serde

from common.evidence import Evidence
from jobs.closure.facts import Facts

PRODUCER = "https://github.com/ledgerlane/ledgerlane"
NAMESPACE = "ledgerlane"
RUN_NAMESPACE = uuid.UUID("6c1f6f3e-1b8e-4d2b-9a0e-5f3e2d7c9b11")
# Which job of a run writes which tables (a job is named after the lane step that made the commits).
JOB_TABLES = {
    "ingest": ("bronze.admitted_events", "bronze.duplicate_events", "bronze.quarantine", "meta.ingest_receipts"),
    "decide": ("decision.decisions", "decision.actions", "decision.audit", "meta.decide_receipts"),
    "cases": ("meta.case_receipts",),
    "export-labels": ("labels.label_events",),
    "build": ("silver.transactions_view", "gold.account_features", "gold.merchant_risk"),
    "certify": ("meta.certifications",),
}
JOB_INPUTS = {"decide": ("bronze.admitted_events", "gold.account_features", "gold.merchant_risk"),
              "cases": ("decision.actions",), "build": ("bronze.admitted_events", "labels.label_events")}


def run_uuid(run_id: str, job: str) -> str:
    """Stable per (run, job): the same run closed twice names the same OpenLineage runs."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{run_id}/{job}"))


def datasets(facts: Facts, evidence: Evidence, names: tuple[str, ...], tables_root: str) -> list[OutputDataset]:
    versions = {t.table: t.versions for t in evidence.tables}
    assertions = {c.table: c for c in evidence.certifications}
    found = []
    for name in names:
        if name not in versions:
            continue
        facets = {"version": dv.DatasetVersionDatasetFacet(datasetVersion=str(versions[name][-1]), producer=PRODUCER)}
        certified = [r for r in facts.certifications if r["table_name"] == name and name in assertions]
        if certified:
            facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(
                assertions=[dq.Assertion(assertion=e["expectation"], success=bool(e["passed"]))
                            for e in certified[-1]["expectations"]], producer=PRODUCER)
        found.append(OutputDataset(namespace=f"file://{tables_root}" if "://" not in tables_root else tables_root,
                                   name=name, facets=facets))
    return found


def events(facts: Facts, evidence: Evidence, tables_root: str) -> dict[str, RunEvent]:
    """``openlineage/<job>-<state>.json`` -> the event."""
    written = {c.table: c for c in facts.commits}
    out: dict[str, RunEvent] = {}
    for job, names in JOB_TABLES.items():
        commits = [written[n] for n in names if n in written]
        if not commits:
            continue
        inputs = [InputDataset(namespace=NAMESPACE, name=n) for n in JOB_INPUTS.get(job, ())]
        if job == "ingest" and evidence.bus:
            inputs = [InputDataset(namespace=f"kafka://{evidence.bus.cluster_id_basis}", name=evidence.bus.topic)]
        outputs = datasets(facts, evidence, names, tables_root)
        end = "COMPLETE" if not [c for c in evidence.checks if not c.ok and c.name.endswith(job)] else "FAIL"
        for state in ("START", end):
            event = RunEvent(eventType=RunState[state], eventTime=evidence.closed_at.isoformat(), producer=PRODUCER,
                             run=Run(runId=run_uuid(evidence.run_id, job)), job=Job(namespace=NAMESPACE, name=job),
                             inputs=inputs, outputs=outputs if state != "START" else [])
            out[f"openlineage/{job}-{state.lower()}.json"] = event
    state = "COMPLETE" if evidence.verdict == "PASS" else "FAIL"
    closure = RunEvent(eventType=RunState[state], eventTime=evidence.closed_at.isoformat(), producer=PRODUCER,
                       run=Run(runId=run_uuid(evidence.run_id, "closure")), job=Job(namespace=NAMESPACE, name="closure"),
                       inputs=[], outputs=[])
    out[f"openlineage/closure-{state.lower()}.json"] = closure
    return out


def serialized(found: dict[str, RunEvent]) -> dict[str, bytes]:
    return {path: (Serde.to_json(event) + "\n").encode() for path, event in found.items()}


def send(url: str, found: dict[str, RunEvent]) -> str | None:
    """Post the events to an OpenLineage endpoint; a failure is reported, never fatal to the verdict."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    try:
        client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=url, timeout=10)))
        for event in found.values():
            client.emit(event)
    except Exception as exc:  # a lineage collector being down must not change a run's verdict
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None
