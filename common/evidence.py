"""The evidence bundle's schema: what a closed run proves, versioned and published as JSON Schema.

``evidence.json`` is an ``Evidence``; ``_COMPLETE`` holds its SHA-256 (PASS only); every file the
bundle copied (Delta log entries, checkpoint offsets and commits, certification results, OpenLineage
events) is listed with its own SHA-256, so ``ledgerlane evidence verify`` can recheck all of it long after
the services, the checkpoints and the topic are gone. Nothing secret is ever written here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "ledgerlane.evidence/1"
EVIDENCE_FILE, REPORT_FILE = "evidence.json", "report.html"
COMPLETE, FAILED, LOCK = "_COMPLETE", "_FAILED", "_LOCK"
PASS, FAIL = "PASS", "FAIL"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Check(_Model):
    """One proof: its name, whether it holds, and what was found (in plain words when it does not)."""

    name: str
    ok: bool
    detail: str


class Partition(_Model):
    partition: int
    basis_start: int
    basis_end: int
    earliest_now: int | None = None
    latest_now: int | None = None
    committed: int | None = None
    lag: int
    received: int
    admitted: int
    duplicates: int
    quarantined: int


class Bus(_Model):
    topic: str
    epoch: int | None
    cluster_id_basis: str
    cluster_id_now: str | None
    topic_id_basis: str
    topic_id_now: str | None
    basis_captured_at: datetime


class Funnel(_Model):
    received: int
    admitted: int
    duplicates: int
    quarantined: int
    quarantined_by_reason: dict[str, int] = Field(default_factory=dict)
    decided: int
    decisions_by_outcome: dict[str, int] = Field(default_factory=dict)
    decisions_by_reason: dict[str, int] = Field(default_factory=dict)
    actions_by_type: dict[str, int] = Field(default_factory=dict)
    cases_opened: int
    cards_blocked: int


class Certification(_Model):
    product: str
    table: str
    version: int | None
    status: str
    engine: str | None = None
    evidence_path: str | None = None


class TableCommits(_Model):
    """The commits of one Delta table that carry the run's id, read from its log."""

    table: str
    versions: list[int]
    operations: dict[str, int]
    rows_written: int
    txn_app_ids: list[str]


class Stream(_Model):
    stream: str
    checkpoint: str
    app_id: str | None
    offsets: list[int]
    commits: list[int]


class CopiedFile(_Model):
    role: str           # delta_log | checkpoint | certification | openlineage
    source: str
    path: str           # inside the bundle
    sha256: str
    bytes: int


class Evidence(_Model):
    schema_version: Literal["ledgerlane.evidence/1"] = SCHEMA_VERSION
    run_id: str
    verdict: Literal["PASS", "FAIL"]
    reasons: list[str]
    closed_at: datetime
    attempt: int
    closer: str
    code_version: str
    config_digest: str
    bus: Bus | None
    partitions: list[Partition]
    funnel: Funnel
    certifications: list[Certification]
    tables: list[TableCommits]
    streams: list[Stream]
    migrations_head: str | None
    checks: list[Check]
    copied: list[CopiedFile]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_schema() -> str:
    """The published schema (docs/evidence.schema.json), generated from the model."""
    return json.dumps(Evidence.model_json_schema(), indent=2, sort_keys=True) + "\n"
