"""Case worker: ``open_case`` actions -> cases in PostgreSQL, one per action id, whatever the replays.

    spark-submit jobs/submit.py cases --run-id r-20261122-1 --until-caught-up
    ledgerlane stream cases --run-id r-20261122-1 --until-caught-up

A Structured Streaming query over ``decision.actions`` with its own checkpoint (availableNow for
``--until-caught-up``, a processing-time trigger when it runs continuously). Each batch opens its cases
and beats the worker's heartbeat in one database transaction; only after that commit does it record
the effects in the action ledger and its receipt, and only after the batch function returns does Spark
commit the batch. With the database down the batch fails (exit 4), nothing is committed, and the next
start catches up: the repository is idempotent on the action id, so nothing is lost or doubled.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import catalog, delta, tables
from common.config import Settings
from common.endpoints import postgres_params
from common.errors import LedgerlaneError
from common.faults import crash_if_requested
from common.jobspec import Job, JobContext, stream_options
from common.run import assert_run_id
from human_loop import cases as repo
from human_loop.connection import connect
from human_loop.heartbeats import heartbeat
from streaming import checkpoint as ckpt
from streaming import query
from streaming.decide import LEDGER_SCHEMA
from streaming.policy import OPEN_CASE

RECEIPT_SCHEMA = ("run_id string, app_id string, batch_id long, source_start string, source_end string, "
                  "actions long, cases_opened long, written_at timestamp")
MAX_FILES_PER_TRIGGER = 200


@dataclass(frozen=True)
class CaseTables:
    actions: str
    ledger: str
    receipts: str
    apps: str

    @classmethod
    def from_root(cls, root: str) -> "CaseTables":
        loc = lambda name: catalog.location(root, name)  # noqa: E731
        return cls(loc("decision.actions"), loc("decision.action_ledger"), loc("meta.case_receipts"),
                   loc(ckpt.APPS_TABLE))


def checkpoint_location(settings: Settings) -> str:
    return f"{settings.checkpoints_root.rstrip('/')}/cases"


def open_case_actions(actions: DataFrame) -> DataFrame:
    """The actions that open a case, with what the repository needs (the time as epoch micros, zone-free)."""
    return actions.where(F.col("action_type") == OPEN_CASE).select(
        "action_id", "account_id", "event_id", "decision_id", "reason", "run_id",
        F.unix_micros("created_at").alias("created_us"))


def to_action(row: dict) -> repo.OpenCaseAction:
    opened_at = datetime.fromtimestamp(row["created_us"] / 1_000_000, tz=timezone.utc)
    return repo.OpenCaseAction(action_id=row["action_id"], account_id=row["account_id"], event_id=row["event_id"],
                               decision_id=row["decision_id"], reason=row["reason"][:2000], run_id=row["run_id"],
                               opened_at=opened_at)


class CaseBatchWriter(query.BatchFunction):
    def __init__(self, paths: CaseTables, run_id: str, identity: ckpt.CheckpointIdentity, pg_params: dict):
        self.paths, self.run_id, self.identity, self.pg_params = paths, run_id, identity, pg_params
        self.receipts_path, self.app_id = paths.receipts, identity.app_id

    def write(self, batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        ckpt.claim_batch(spark, self.identity.checkpoint, batch_id, self.run_id)
        rows = [row.asDict() for row in open_case_actions(batch).collect()]
        opened = self._open(rows)
        crash_if_requested("cases.after_db", batch_id)
        txn, clock = (self.identity.app_id, batch_id), datetime.now(timezone.utc)
        ledger = [(action_id, OPEN_CASE, "human_loop.cases", case_id, self.run_id, self.identity.app_id, batch_id, clock)
                  for action_id, case_id in sorted(opened.items())]
        if ledger:
            frame = spark.createDataFrame(ledger, LEDGER_SCHEMA)
            delta.append(frame, self.paths.ledger, "decision.action_ledger", self.run_id, txn=txn)
        start, end = ckpt.source_range(spark, self.identity.checkpoint, batch_id)
        receipt = [(self.run_id, self.identity.app_id, batch_id, start, end, len(rows), len(opened), clock)]
        frame = spark.createDataFrame(receipt, RECEIPT_SCHEMA)
        delta.append(frame, self.paths.receipts, "meta.case_receipts", self.run_id, txn=txn)
        crash_if_requested("cases.before_commit", batch_id)

    def _open(self, rows: list[dict]) -> dict[str, str]:
        """One transaction: every case of the batch and the worker's heartbeat, or nothing."""
        actions = [to_action(row) for row in rows]
        with connect(self.pg_params, application_name="ledgerlane-case-worker") as conn:
            cases = {action.action_id: str(repo.open_case(conn, action)["case_id"]) for action in actions}
            heartbeat(conn, repo.CASE_WORKER, self.run_id)
        return cases


def open_cases(spark: SparkSession, settings: Settings, run_id: str, *, until_caught_up: bool = True,
               trigger_seconds: int = 2, progress=lambda _: None) -> dict:
    run_id = assert_run_id(run_id)
    paths = CaseTables.from_root(settings.tables_root)
    if not tables.exists(spark, paths.actions):
        raise LedgerlaneError(f"no actions yet: {paths.actions} does not exist (run decide first)")
    spec = query.DeltaSource("cases", paths.actions, checkpoint_location(settings), paths.receipts, paths.apps,
                             MAX_FILES_PER_TRIGGER)
    params = postgres_params(settings)
    run = query.run_over_delta(
        spark, spec, run_id, lambda identity, _checked: CaseBatchWriter(paths, run_id, identity, params),
        until_caught_up=until_caught_up, trigger_seconds=trigger_seconds, progress=progress)
    receipts = tables.read_or_empty(spark, paths.receipts, RECEIPT_SCHEMA).where(F.col("run_id") == run_id)
    totals = receipts.agg(F.count(F.lit(1)).alias("batches"), F.coalesce(F.sum("actions"), F.lit(0)).alias("actions"),
                          F.coalesce(F.sum("cases_opened"), F.lit(0)).alias("cases")).first().asDict()
    return {"run_id": run_id, "app_id": run.identity.app_id, **totals, "seconds": round(run.seconds, 2)}


def describe(summary: dict) -> str:
    return (f"case worker run {summary['run_id']}: {summary['batches']} batches, {summary['actions']} open_case "
            f"actions, {summary['cases']} cases in PostgreSQL")


def _run(ctx: JobContext, args: dict) -> dict:
    return open_cases(ctx.spark, ctx.settings, args["run_id"], until_caught_up=args["until_caught_up"],
                      trigger_seconds=args["trigger_seconds"], progress=ctx.progress)


JOB = Job(
    name="cases", group="stream", module="streaming.cases", streaming=True, run=_run, describe=describe,
    summary="open_case actions -> cases in PostgreSQL (idempotent on the action id), with heartbeats "
            "(exit 4 while the database is down; a restart catches up).",
    options=stream_options("Open the cases of every action so far"),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
