"""Decide stream: admitted events x certified features -> decisions, actions, audit; card blocks take effect.

    spark-submit jobs/submit.py decide --run-id r-20261122-1 --until-caught-up
    ledgerlane stream decide --run-id r-20261122-1 --until-caught-up

The source is the admitted Delta table as a stream, not the bus: every event it sees was validated and
deduplicated once, by ingest; its offsets are Delta versions, which time travel can replay exactly;
and it costs one commit of latency (ingest's) over reading Kafka directly.

Per batch, every Delta write with (txnAppId = the checkpoint's app id, txnVersion = batch id): decisions,
actions and audit, side by side with the block_card effects in PostgreSQL (idempotent on the action id)
followed by the action ledger that records them; then, last, the receipt. Spark records ``commits/N``
only after all of it, so a crash anywhere replays the batch, and the replay writes nothing twice and
blocks no card twice.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from checks import gate
from common import catalog, delta, tables
from common.config import DecisionConfig, Settings
from common.endpoints import postgres_params
from common.errors import IdempotencyConflict, IdentityError, LedgerlaneError
from common.faults import crash_if_requested
from common.identity import malformed_identity_column, placeholder_column
from common.jobspec import Job, JobContext, stream_options
from common.run import assert_run_id
from common.spark import cached, concurrently, with_batch_values
from human_loop import card_controls
from human_loop.connection import connect
from products import product
from streaming import checkpoint as ckpt
from streaming import policy, query

# The feature products, by their declarations (importing them registers their tables in the catalog).
FEATURES, MERCHANTS = product("account_features").table.name, product("merchant_risk").table.name
IDENTITY_FIELDS = ("event_id", "account_id", "card_id", "merchant_id")
RECEIPT_SCHEMA = (
    "run_id string, app_id string, batch_id long, source_start string, source_end string, policy_version string, "
    "policy_digest string, feature_versions map<string,long>, events long, decisions_by_outcome map<string,long>, "
    "actions_by_type map<string,long>, cards_blocked long, written_at timestamp"
)
LEDGER_SCHEMA = ("action_id string, action_type string, effect_store string, effect_ref string, run_id string, "
                 "app_id string, batch_id long, recorded_at timestamp")


@dataclass(frozen=True)
class DecideTables:
    admitted: str
    decisions: str
    actions: str
    audit: str
    ledger: str
    receipts: str
    apps: str

    @classmethod
    def from_root(cls, root: str) -> "DecideTables":
        loc = lambda name: catalog.location(root, name)  # noqa: E731
        return cls(loc("bronze.admitted_events"), loc("decision.decisions"), loc("decision.actions"),
                   loc("decision.audit"), loc("decision.action_ledger"), loc("meta.decide_receipts"),
                   loc(ckpt.APPS_TABLE))


def checkpoint_location(settings: Settings) -> str:
    return f"{settings.checkpoints_root.rstrip('/')}/decide"


# ---- pure shaping ---------------------------------------------------------------------------------

def with_context(frame: DataFrame, context: dict, stamp: str) -> DataFrame:
    """Stamp rows with the batch's lineage: run, app, batch, source range, certified feature versions,
    and the batch's clock as column ``stamp``."""
    versions = F.create_map(*[part for table, version in sorted(context["feature_versions"].items())
                              for part in (F.lit(table), F.lit(version).cast("long"))])
    batch = with_batch_values(frame, f"batch_id long, {stamp} timestamp", (context["batch_id"], context["clock"]))
    return batch.select(
        *frame.columns, F.lit(context["run_id"]).alias("run_id"), F.lit(context["app_id"]).alias("app_id"),
        "batch_id", F.lit(context["source_start"]).alias("source_start"),
        F.lit(context["source_end"]).alias("source_end"), versions.alias("feature_versions"), stamp)


def without_explicit_identity() -> Column:
    """True for an event whose subject keys are placeholders or malformed (ingest never admits them)."""
    condition = F.lit(False)
    for field in IDENTITY_FIELDS:
        condition = condition | placeholder_column(F.col(field)) | malformed_identity_column(F.col(field))
    return condition


def tally(rows: list, key: str) -> dict[str, int]:
    return {row[key]: row["n"] for row in rows}


# ---- the foreachBatch function --------------------------------------------------------------------

class DecideBatchWriter(query.BatchFunction):
    def __init__(self, paths: DecideTables, tables_root: str, run_id: str, identity: ckpt.CheckpointIdentity,
                 decision: DecisionConfig, pg_params: dict, certified: list[gate.CertifiedProduct] | None = None):
        self.paths, self.tables_root, self.run_id, self.identity = paths, tables_root, run_id, identity
        self.decision, self.pg_params = decision, pg_params
        self.receipts_path, self.app_id = paths.receipts, identity.app_id
        self.written: list[dict] = []   # the receipts of the batches this writer completed
        self.certified = certified      # the gate's answer read just before the first batch, if any

    def write(self, batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        ckpt.claim_batch(spark, self.identity.checkpoint, batch_id, self.run_id)
        features, merchants = self._certified_features(spark)
        start, end = ckpt.source_range(spark, self.identity.checkpoint, batch_id)
        context = {"run_id": self.run_id, "app_id": self.identity.app_id, "batch_id": batch_id, "source_start": start,
                   "source_end": end, "feature_versions": {FEATURES: features.version, MERCHANTS: merchants.version},
                   "clock": datetime.now(timezone.utc)}
        decided = policy.decide(batch, policy.latest_per(features.frame, "account_id"),
                                policy.latest_per(merchants.frame, "merchant_id"), self.decision)
        with cached(decided) as decisions:
            # One small aggregate first: it fills the cache every write reads, gives the receipt its counts
            # and fails the batch closed, before any write, on an event without explicit identity.
            outcomes = count_with_explicit_identity(decisions, batch_id)
            with cached(policy.actions(decisions)) as actions:
                # Independent idempotent writes, side by side: their Delta log reads and commits overlap.
                *_, blocked = concurrently(
                    spark,
                    lambda: self._append(decisions, "decided_at", self.paths.decisions, "decision.decisions", context),
                    lambda: self._append(actions, "created_at", self.paths.actions, "decision.actions", context),
                    lambda: self._append(policy.audit(decisions, actions), "recorded_at", self.paths.audit,
                                         "decision.audit", context),
                    lambda: self._apply_blocks(actions, context))
        self._write_receipt(spark, sum(outcomes.values()), outcomes, blocked, context)
        crash_if_requested("decide.before_commit", batch_id)

    def _certified_features(self, spark: SparkSession) -> list[gate.CertifiedProduct]:
        """Through the read gate, for every batch; the first uses the answer read as the run started."""
        if self.certified is not None:
            found, self.certified = self.certified, None
            return found
        return gate.certified_all(spark, self.tables_root, [FEATURES, MERCHANTS])

    def _append(self, frame: DataFrame, stamp: str, path: str, table: str, context: dict) -> None:
        stamped = with_context(frame, context, stamp)
        delta.append(stamped, path, table, self.run_id, txn=(context["app_id"], context["batch_id"]))

    def _apply_blocks(self, actions: DataFrame, context: dict) -> int:
        """The external effect first (idempotent on the action id), then the ledger that records it."""
        blocks = [row.asDict() for row in actions.where(F.col("action_type") == policy.BLOCK_CARD).select(
            "action_id", "decision_id", "card_id", "account_id", "reason").collect()]
        if not blocks:
            return 0
        with connect(self.pg_params, application_name="ledgerlane-decide") as conn:
            applied = card_controls.block_cards(conn, [{**b, "run_id": self.run_id} for b in blocks])
        crash_if_requested("decide.after_effects", context["batch_id"])
        rows = [(action_id, policy.BLOCK_CARD, "human_loop.card_controls", str(control_id), self.run_id,
                 context["app_id"], context["batch_id"], context["clock"])
                for action_id, control_id in sorted(applied.items())]
        frame = actions.sparkSession.createDataFrame(rows, LEDGER_SCHEMA)
        delta.append(frame, self.paths.ledger, "decision.action_ledger", self.run_id,
                     txn=(context["app_id"], context["batch_id"]))
        crash_if_requested("decide.after_ledger", context["batch_id"])
        return len(rows)

    def _write_receipt(self, spark: SparkSession, events: int, outcomes: dict[str, int], blocked: int,
                       context: dict) -> None:
        """The batch's last write: with it, the batch is complete (a replay finds it and computes nothing)."""
        receipt = {**{k: context[k] for k in ("run_id", "app_id", "batch_id", "source_start", "source_end",
                                             "feature_versions")},
                   "policy_version": self.decision.policy_version, "policy_digest": self.decision.digest(),
                   "events": events, "decisions_by_outcome": outcomes,
                   "actions_by_type": policy.action_counts(outcomes), "cards_blocked": blocked,
                   "written_at": context["clock"]}
        frame = spark.createDataFrame([receipt], RECEIPT_SCHEMA)
        delta.append(frame, self.paths.receipts, "meta.decide_receipts", self.run_id,
                     txn=(context["app_id"], context["batch_id"]))
        self.written.append(receipt)


def count_with_explicit_identity(decisions: DataFrame, batch_id: int) -> dict[str, int]:
    """Decisions by outcome (one per event of the batch), in one pass that also fails closed: an admitted
    row with a placeholder or malformed subject key (written around ingest) is never decided."""
    rows = decisions.groupBy("outcome").agg(F.count(F.lit(1)).alias("n"),
                                            F.count(F.when(without_explicit_identity(), True)).alias("bad")).collect()
    if any(row["bad"] for row in rows):
        assert_explicit_identity(decisions, batch_id)
    return tally(rows, "outcome")


def assert_explicit_identity(events: DataFrame, batch_id: int) -> None:
    """Fail closed: an admitted row with a placeholder subject key (written around ingest) is never decided."""
    bad = events.where(without_explicit_identity()).select(*IDENTITY_FIELDS).limit(3).collect()
    if bad:
        shown = "; ".join(", ".join(f"{f}={row[f]!r}" for f in IDENTITY_FIELDS) for row in bad)
        raise IdentityError(
            f"batch {batch_id} of bronze.admitted_events holds events without explicit identity ({shown}); "
            "ingest never admits such rows, so the table was written around it. Nothing of the batch was decided")


# ---- running the stream ---------------------------------------------------------------------------

def assert_policy_version_names_one_policy(receipts: list[dict], decision: DecisionConfig) -> None:
    """The same policy version with other rules would make two behaviours indistinguishable in the audit."""
    digests = {r["policy_digest"] for r in receipts if r["policy_version"] == decision.policy_version}
    if digests - {decision.digest()}:
        raise IdempotencyConflict(
            f"decision policy {decision.policy_version} was already used with other thresholds or weights "
            f"(digest {', '.join(sorted(digests))}; now {decision.digest()}): give the changed policy a new "
            "decision.policy_version")


def prior_receipts(spark: SparkSession, receipts_path: str, run_id: str, decision: DecisionConfig) -> list[dict]:
    """One read before the stream starts: the run's receipts so far (for its summary) and every receipt
    of this policy version (for the digest check)."""
    receipts = tables.read_or_empty(spark, receipts_path, RECEIPT_SCHEMA).where(
        (F.col("run_id") == run_id) | (F.col("policy_version") == decision.policy_version))
    return [row.asDict() for row in receipts.drop("feature_versions").collect()]


def decide(spark: SparkSession, settings: Settings, run_id: str, *, until_caught_up: bool = True,
           trigger_seconds: int = 2, progress=lambda _: None) -> dict:
    """Decide every admitted event not decided yet (availableNow), or keep deciding (processing time)."""
    run_id = assert_run_id(run_id)
    paths, decision = DecideTables.from_root(settings.tables_root), settings.decision
    if not tables.exists(spark, paths.admitted):
        raise LedgerlaneError(f"nothing to decide: {paths.admitted} does not exist yet (run ingest first)")
    spec = query.DeltaSource("decide", paths.admitted, checkpoint_location(settings), paths.receipts, paths.apps,
                             decision.max_files_per_trigger)

    def preflight() -> tuple[list[gate.CertifiedProduct], list[dict]]:
        # No PASS: decide nothing, exit 7. Read side by side with the receipts so far (and, by the
        # runner, with the checkpoint's identity), before anything is written.
        certified, prior = concurrently(spark,
                                        lambda: gate.certified_all(spark, settings.tables_root, [FEATURES, MERCHANTS]),
                                        lambda: prior_receipts(spark, paths.receipts, run_id, decision))
        assert_policy_version_names_one_policy(prior, decision)
        return certified, prior

    progress(f"deciding under policy {decision.policy_version}")
    writers: list[DecideBatchWriter] = []

    def writer(identity: ckpt.CheckpointIdentity, checked: tuple) -> DecideBatchWriter:
        # Until caught up, the first batch starts at once and may use the gate's answer the preflight read; a
        # continuous stream's first batch may come hours later, and asks the gate itself.
        certified = checked[0] if until_caught_up else None
        writers.append(DecideBatchWriter(paths, settings.tables_root, run_id, identity, decision,
                                         postgres_params(settings), certified))
        return writers[-1]

    run = query.run_over_delta(spark, spec, run_id, writer, until_caught_up=until_caught_up,
                               trigger_seconds=trigger_seconds, progress=progress, preflight=preflight)
    prior = run.checked[1]
    written = [receipt for w in writers for receipt in w.written]
    return summarize([r for r in prior if r["run_id"] == run_id] + written, run_id, run.identity.app_id, run.seconds)


def summarize(receipts: list[dict], run_id: str, app_id: str, seconds: float) -> dict:
    """The run's decide receipts (those read before the stream started, and those it wrote) in one summary."""
    outcomes: dict[str, int] = {}
    actions: dict[str, int] = {}
    for receipt in receipts:
        for key, value in (receipt["decisions_by_outcome"] or {}).items():
            outcomes[key] = outcomes.get(key, 0) + value
        for key, value in (receipt["actions_by_type"] or {}).items():
            actions[key] = actions.get(key, 0) + value
    return {"run_id": run_id, "app_id": app_id, "batches": len(receipts), "events": sum(r["events"] for r in receipts),
            "decisions_by_outcome": outcomes, "actions_by_type": actions,
            "cards_blocked": sum(r["cards_blocked"] for r in receipts), "seconds": round(seconds, 2)}


def describe(summary: dict) -> str:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary["decisions_by_outcome"].items())) or "none"
    acts = ", ".join(f"{k} {v}" for k, v in sorted(summary["actions_by_type"].items())) or "none"
    return (f"decide run {summary['run_id']}: {summary['batches']} batches, {summary['events']} events decided "
            f"({outcomes}); actions: {acts}; {summary['cards_blocked']} card blocks in effect")


def _run(ctx: JobContext, args: dict) -> dict:
    return decide(ctx.spark, ctx.settings, args["run_id"], until_caught_up=args["until_caught_up"],
                  trigger_seconds=args["trigger_seconds"], progress=ctx.progress)


JOB = Job(
    name="decide", group="stream", module="streaming.decide", streaming=True, run=_run, describe=describe,
    summary="Admitted events -> decisions, actions and audit under the versioned policy; card blocks take "
            "effect once (exit 7 while a feature product has no PASS).",
    options=stream_options("Decide everything admitted so far"),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
