"""Apply the human-loop database migrations (one-shot; no Spark needed, runnable wherever jobs run).

    spark-submit jobs/migrate_db.py --run-id r-20250101T000000Z-abc123
    ledgerlane db migrate --run-id r-20250101T000000Z-abc123

Each migration is applied once, in order, in its own transaction, with its checksum recorded; a
changed applied file is refused (drift). Concurrent runs are serialised by the database.
"""

from __future__ import annotations

import sys

from common.endpoints import postgres_params
from common.jobspec import Job, JobContext, Option
from common.run import assert_run_id, new_run_id
from human_loop import migrate


def _run(ctx: JobContext, args: dict) -> dict:
    run_id = args["run_id"] or new_run_id()
    return {"run_id": run_id, **migrate.migrate(postgres_params(ctx.settings), run_id=run_id)}


def describe(summary: dict) -> str:
    applied = ", ".join(summary["applied"]) or "nothing (already at head)"
    return f"applied {applied}; head {summary['head']}"


JOB = Job(
    name="migrate", group="db", module="jobs.migrate_db", run=_run, describe=describe,
    summary="Apply pending migrations of the human-loop database; refuses when an applied file has changed.",
    options=(Option("--run-id", "Run id recorded with each applied version (default: a new one).",
                    parse=assert_run_id),),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
