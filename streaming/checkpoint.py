"""Checkpoint identity and progress.

Delta skips a write whose (txnAppId, txnVersion) it has already seen. The app id therefore belongs to
one checkpoint: a fresh or reset checkpoint restarting at batch 0 under an old app id would have its
writes skipped silently. ``check_identity`` refuses that combination, and ``record_identity``
writes a new identity only once every check of a start passed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import delta, fs, tables
from common.errors import IdempotencyConflict, StateDrift
from common.spark import concurrently

IDENTITY_FILE = "ledgerlane.json"
BATCH_CLAIM_FILE = "ledgerlane-batch.json"   # the run that planned the batch now being written
APPS_TABLE = "meta.stream_apps"
APPS_SCHEMA = "app_id string, checkpoint string, created_at timestamp, run_id string, stream string, binding string"


@dataclass(frozen=True)
class CheckpointIdentity:
    app_id: str
    checkpoint: str
    stream: str = "ingest"
    binding: dict = field(default_factory=dict)   # what the offsets refer to, e.g. topic, epoch, topic id

    @classmethod
    def from_json(cls, text: str) -> "CheckpointIdentity":
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def batch_ids(spark: SparkSession, checkpoint: str, log: str) -> list[int]:
    """Batch numbers present in ``offsets/`` or ``commits/`` (hidden and temp files ignored)."""
    return sorted(int(name) for name in fs.list_names(spark, f"{checkpoint}/{log}") if name.isdigit())


def pending_batch(spark: SparkSession, checkpoint: str) -> int | None:
    """The batch planned in ``offsets/`` but not committed (a restart replays it), if any."""
    planned, committed = batch_ids(spark, checkpoint, "offsets"), batch_ids(spark, checkpoint, "commits")
    if planned and (not committed or planned[-1] > committed[-1]):
        return planned[-1]
    return None


def remove_orphan_checksums(spark: SparkSession, checkpoint: str) -> list[str]:
    """Delete ``.N.crc`` files whose ``N`` is gone (e.g. a commit file deleted by hand).

    Spark refuses to write ``commits/N`` over a leftover checksum and reports it as "multiple streaming
    queries"; the checksum of a file that no longer exists vouches for nothing, so removing it is safe.
    """
    removed = []
    for log in ("offsets", "commits"):
        names = set(fs.list_raw_names(spark, f"{checkpoint}/{log}"))
        for name in sorted(names):
            if name.startswith(".") and name.endswith(".crc") and name[1:-4] not in names:
                fs.delete_raw(spark, f"{checkpoint}/{log}/{name}")
                removed.append(f"{log}/{name}")
    return removed


def claim_batch(spark: SparkSession, checkpoint: str, batch_id: int, run_id: str) -> None:
    """Record that ``run_id`` is writing ``batch_id``; a replay under another run id is refused.

    Called by the batch function before its first write, so every row, receipt and commit of one batch
    names one run, however often the batch is replayed.
    """
    planned_by = batch_claim(spark, checkpoint, batch_id)
    if planned_by is not None and planned_by != run_id:
        raise IdempotencyConflict(replayed_under_other_run(checkpoint, batch_id, planned_by, run_id))
    if planned_by is None:
        fs.write_text(spark, f"{checkpoint}/{BATCH_CLAIM_FILE}",
                      json.dumps({"batch_id": batch_id, "run_id": run_id}), overwrite=True)


def batch_claim(spark: SparkSession, checkpoint: str, batch_id: int) -> str | None:
    """The run that started writing ``batch_id``, if it was the last batch claimed here."""
    path = f"{checkpoint}/{BATCH_CLAIM_FILE}"
    if not fs.exists(spark, path):
        return None
    claim = json.loads(fs.read_text(spark, path))
    return claim["run_id"] if claim.get("batch_id") == batch_id else None


def replayed_under_other_run(checkpoint: str, batch_id: int, planned_by: str, run_id: str) -> str:
    return (f"batch {batch_id} of checkpoint {checkpoint} was started by run {planned_by} and not committed; "
            f"replaying it under run {run_id} would split one batch across two runs. "
            f"Resume with --run-id {planned_by} first, then start run {run_id}")


def assert_pending_batch_is_ours(spark: SparkSession, checkpoint: str, run_id: str) -> None:
    """Before starting: a half-written batch of another run is resumed by that run only."""
    pending = pending_batch(spark, checkpoint)
    planned_by = batch_claim(spark, checkpoint, pending) if pending is not None else None
    if planned_by is not None and planned_by != run_id:
        raise IdempotencyConflict(replayed_under_other_run(checkpoint, pending, planned_by, run_id))


def committed_offsets(spark: SparkSession, checkpoint: str, topic: str) -> tuple[int | None, dict[int, int]]:
    """(last committed batch, next offset to read per partition) — the durable "processed" position."""
    commits = batch_ids(spark, checkpoint, "commits")
    if not commits:
        return None, {}
    lines = fs.read_text(spark, f"{checkpoint}/offsets/{commits[-1]}").splitlines()
    # offsets/N is "v1", batch metadata, then one JSON line per source: {"topic": {"0": 42, ...}}
    source = json.loads(lines[2])
    return commits[-1], {int(p): int(o) for p, o in source.get(topic, {}).items()}


def source_range(spark: SparkSession, checkpoint: str, batch_id: int) -> tuple[str, str]:
    """The source offsets batch ``batch_id`` read from (exclusive) and up to, as JSON text from ``offsets/``.

    A batch's own offsets file is written before the batch runs, so the batch function can cite it.
    """
    def offsets(batch: int) -> str:
        lines = fs.read_text(spark, f"{checkpoint}/offsets/{batch}").splitlines()
        return "\n".join(lines[2:])   # after "v1" and the batch metadata: one line per source
    return (offsets(batch_id - 1) if batch_id > 0 else "start"), offsets(batch_id)


@dataclass(frozen=True)
class IdentityCheck:
    """What ``check_identity`` found: the checkpoint's identity, and whether it is still to be recorded."""

    identity: CheckpointIdentity
    new: bool


def check_identity(spark: SparkSession, checkpoint: str, *, apps_path: str, receipts_path: str, stream: str,
                   binding: dict, prior_work: Callable[[], str | None]) -> IdentityCheck:
    """Read this checkpoint's identity, or plan a new one; refuse every state in which Delta could skip
    writes or the stream would read its source a second time. It only reads, so a caller may run its own
    checks beside it and record a new identity (``record_identity``) only once every check passed.

    ``binding`` is what the checkpoint's offsets refer to (for ingest: topic, epoch, topic id); an
    identity bound to something else is refused. ``prior_work`` describes receipts already written for
    that binding (None when there are none): a new checkpoint over prior work was replaced or moved.
    """
    identity_path = f"{checkpoint}/{IDENTITY_FILE}"
    offsets = batch_ids(spark, checkpoint, "offsets")
    if not fs.exists(spark, identity_path):
        if offsets:
            raise IdempotencyConflict(
                f"checkpoint {checkpoint} has progress (batches up to {offsets[-1]}) but no {IDENTITY_FILE}: "
                "it was not created by ledgerlane, so its Delta app id is unknown; use a new checkpoint location")
        _assert_not_replaced(spark, checkpoint, apps_path, prior_work)
        planned = CheckpointIdentity(app_id=f"{stream}-{uuid.uuid4().hex}", checkpoint=checkpoint, stream=stream,
                                     binding=binding)
        return IdentityCheck(planned, new=True)
    identity = CheckpointIdentity.from_json(fs.read_text(spark, identity_path))
    # The two tables are read side by side; the checks then run in their order.
    homes, written = concurrently(spark, lambda: _registered_homes(spark, identity, apps_path),
                                  lambda: _last_batch_written(spark, identity, receipts_path))
    _assert_registered_here(identity, checkpoint, homes)
    _assert_bound_to(identity, binding)
    _assert_checkpoint_not_behind(identity, written, offsets)
    return IdentityCheck(identity, new=False)


def _assert_not_replaced(spark: SparkSession, checkpoint: str, apps_path: str,
                         prior_work: Callable[[], str | None]) -> None:
    """A checkpoint without identity is new; refuse it when this place, or its source, already has history.
    The registry and the prior work are read side by side; the registry's answer is raised first."""
    earlier, work = concurrently(
        spark, lambda: (tables.read_or_empty(spark, apps_path, APPS_SCHEMA).where(F.col("checkpoint") == checkpoint)
                        .orderBy("created_at").collect()),
        prior_work)
    if earlier:
        first = earlier[0]
        raise StateDrift(
            f"checkpoint {checkpoint} was deleted or replaced: app id {first.app_id} was created there by run "
            f"{first.run_id} at {first.created_at:%Y-%m-%d %H:%M:%S} UTC, and its progress is gone. Starting "
            "again would read the source a second time and count every record twice. Nothing was written. "
            "Restore the checkpoint from a backup, or start over explicitly (docs/ingest.md, 'Starting over')")
    if work:
        raise StateDrift(
            f"checkpoint {checkpoint} is new, but {work}: the checkpoint was moved (e.g. by a changed "
            "checkpoints_root) or replaced. Starting here would read the source a second time. Nothing was "
            "written. Point the configuration back at the original checkpoint, or start over explicitly "
            "(docs/ingest.md, 'Starting over')")


def record_identity(spark: SparkSession, found: IdentityCheck, apps_path: str, run_id: str) -> CheckpointIdentity:
    """Write a new identity planned by ``check_identity`` (an existing one is returned as it is).
    Registry first, then the file: a file therefore always has a registry row behind it."""
    identity = found.identity
    if found.new:
        row = [(identity.app_id, identity.checkpoint, datetime.now(timezone.utc), run_id, identity.stream,
                json.dumps(identity.binding, sort_keys=True))]
        delta.append(spark.createDataFrame(row, APPS_SCHEMA), apps_path, APPS_TABLE, run_id)
        fs.write_text(spark, f"{identity.checkpoint}/{IDENTITY_FILE}", identity.to_json())
    return identity


def _registered_homes(spark: SparkSession, identity: CheckpointIdentity, apps_path: str) -> list[str]:
    """The checkpoints the registry holds for the identity's app id."""
    rows = tables.read_or_empty(spark, apps_path, APPS_SCHEMA).where(F.col("app_id") == identity.app_id).collect()
    return sorted({r.checkpoint for r in rows})


def _assert_registered_here(identity: CheckpointIdentity, checkpoint: str, homes: list[str]) -> None:
    """The identity must have been created here: a copied file names (and is registered to) another place."""
    if homes != [checkpoint] or identity.checkpoint != checkpoint:
        raise IdempotencyConflict(
            f"app id {identity.app_id} in {checkpoint}/{IDENTITY_FILE} is registered for "
            f"{homes or 'no checkpoint'}: a copied or forged checkpoint identity would make Delta skip writes; "
            "use a new checkpoint location")


def _assert_bound_to(identity: CheckpointIdentity, binding: dict) -> None:
    differing = sorted(k for k in binding if k in identity.binding and identity.binding[k] != binding[k])
    if differing:
        shown = ", ".join(f"{k} {identity.binding[k]} -> {binding[k]}" for k in differing)
        raise StateDrift(
            f"checkpoint {identity.checkpoint} belongs to another source ({shown}): its offsets do not apply "
            "to what it would read now. Nothing was written. Start over explicitly (docs/ingest.md, 'Starting over')")


def _last_batch_written(spark: SparkSession, identity: CheckpointIdentity, receipts_path: str) -> int | None:
    """The last batch the receipts hold for the identity's app id, if any."""
    receipts = tables.read_or_empty(spark, receipts_path, "app_id string, batch_id long")
    return receipts.where(F.col("app_id") == identity.app_id).agg(F.max("batch_id")).first()[0]


def _assert_checkpoint_not_behind(identity: CheckpointIdentity, written: int | None, offsets: list[int]) -> None:
    planned = offsets[-1] if offsets else -1
    if written is not None and written > planned:
        raise IdempotencyConflict(
            f"checkpoint {identity.checkpoint} was reset: Delta already holds batch {written} for app id "
            f"{identity.app_id} but the checkpoint has planned only up to batch {planned}; restarting would "
            "silently skip writes. Restore the checkpoint or start a new checkpoint location")
