"""Checkpoint identity and progress.

Delta skips a write whose (txnAppId, txnVersion) it has already seen. The app id therefore belongs to
one checkpoint: a fresh or reset checkpoint restarting at batch 0 under an old app id would have its
writes skipped silently. ``ensure_identity`` makes that combination impossible or refuses it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import delta, fs, tables
from common.errors import IdempotencyConflict

IDENTITY_FILE = "ledgerlane.json"
APPS_SCHEMA = "app_id string, checkpoint string, created_at timestamp, run_id string"


@dataclass(frozen=True)
class CheckpointIdentity:
    app_id: str
    checkpoint: str


def batch_ids(spark: SparkSession, checkpoint: str, log: str) -> list[int]:
    """Batch numbers present in ``offsets/`` or ``commits/`` (hidden and temp files ignored)."""
    return sorted(int(name) for name in fs.list_names(spark, f"{checkpoint}/{log}") if name.isdigit())


def committed_offsets(spark: SparkSession, checkpoint: str, topic: str) -> tuple[int | None, dict[int, int]]:
    """(last committed batch, next offset to read per partition) — the durable "processed" position."""
    commits = batch_ids(spark, checkpoint, "commits")
    if not commits:
        return None, {}
    lines = fs.read_text(spark, f"{checkpoint}/offsets/{commits[-1]}").splitlines()
    # offsets/N is "v1", batch metadata, then one JSON line per source: {"topic": {"0": 42, ...}}
    source = json.loads(lines[2])
    return commits[-1], {int(p): int(o) for p, o in source.get(topic, {}).items()}


def ensure_identity(spark: SparkSession, checkpoint: str, apps_path: str, receipts_path: str, run_id: str) -> CheckpointIdentity:
    """Read or create this checkpoint's identity; refuse every state in which Delta could skip writes."""
    identity_path = f"{checkpoint}/{IDENTITY_FILE}"
    offsets = batch_ids(spark, checkpoint, "offsets")
    if not fs.exists(spark, identity_path):
        if offsets:
            raise IdempotencyConflict(
                f"checkpoint {checkpoint} has progress (batches up to {offsets[-1]}) but no {IDENTITY_FILE}: "
                "it was not created by ledgerlane, so its Delta app id is unknown; use a new checkpoint location")
        return _create_identity(spark, checkpoint, apps_path, run_id)
    identity = CheckpointIdentity(**json.loads(fs.read_text(spark, identity_path)))
    _assert_registered_here(spark, identity, checkpoint, apps_path)
    _assert_checkpoint_not_behind(spark, identity, receipts_path, offsets)
    return identity


def _create_identity(spark: SparkSession, checkpoint: str, apps_path: str, run_id: str) -> CheckpointIdentity:
    identity = CheckpointIdentity(app_id=f"ingest-{uuid.uuid4().hex}", checkpoint=checkpoint)
    row = [(identity.app_id, checkpoint, datetime.now(timezone.utc), run_id)]
    # Registry first, then the file: a file therefore always has a registry row behind it.
    delta.append(spark.createDataFrame(row, APPS_SCHEMA), apps_path, "meta.ingest_apps", run_id)
    fs.write_text(spark, f"{checkpoint}/{IDENTITY_FILE}", json.dumps(identity.__dict__))
    return identity


def _assert_registered_here(spark: SparkSession, identity: CheckpointIdentity, checkpoint: str, apps_path: str) -> None:
    """The identity must have been created here: a copied file names (and is registered to) another place."""
    rows = tables.read_or_empty(spark, apps_path, APPS_SCHEMA).where(F.col("app_id") == identity.app_id).collect()
    homes = sorted({r.checkpoint for r in rows})
    if homes != [checkpoint] or identity.checkpoint != checkpoint:
        raise IdempotencyConflict(
            f"app id {identity.app_id} in {checkpoint}/{IDENTITY_FILE} is registered for "
            f"{homes or 'no checkpoint'}: a copied or forged checkpoint identity would make Delta skip writes; "
            "use a new checkpoint location")


def _assert_checkpoint_not_behind(spark: SparkSession, identity: CheckpointIdentity, receipts_path: str, offsets: list[int]) -> None:
    receipts = tables.read_or_empty(spark, receipts_path, "app_id string, batch_id long")
    written = receipts.where(F.col("app_id") == identity.app_id).agg(F.max("batch_id")).first()[0]
    planned = offsets[-1] if offsets else -1
    if written is not None and written > planned:
        raise IdempotencyConflict(
            f"checkpoint {identity.checkpoint} was reset: Delta already holds batch {written} for app id "
            f"{identity.app_id} but the checkpoint has planned only up to batch {planned}; restarting would "
            "silently skip writes. Restore the checkpoint or start a new checkpoint location")
