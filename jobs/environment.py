"""Prove where a job runs that its Python environment, the project's code and Delta work: on the driver
and on the executors, with no other service. The first job to submit to a new EMR application.

    spark-submit jobs/submit.py job-environment --run-id r-env-1
    ledgerlane emr submit job-environment --run-id r-env-1

Each side reports its interpreter, its ``sys.prefix`` and the runtime dependencies it imported; a
Delta table is written twice and read back at its first version (``meta.smoke``). On EMR the prefix
is the packed environment (``./environment``) Spark unpacked for the driver and for each executor.
"""

from __future__ import annotations

import importlib
import platform
import sys

from pyspark.sql import SparkSession

from common import catalog
from common.jobspec import RUN_ID, Job, JobContext, Option, int_between
from common.run import assert_run_id

# What a job imports at run time beyond pyspark (compiled packages first: they break on a wrong platform).
MODULES = ("pyarrow", "pandas", "numpy", "psycopg", "confluent_kafka", "pydantic", "great_expectations",
           "delta", "boto3", "openlineage.client")


def probe(_partition=None) -> dict:
    """Interpreter, prefix and module versions of the Python process this runs in (driver or executor)."""
    modules = {}
    for name in MODULES:
        try:
            modules[name] = getattr(importlib.import_module(name), "__version__", "imported")
        except Exception as exc:  # a report, not a failure: the summary says which import broke and why
            modules[name] = f"FAILED: {type(exc).__name__}: {exc}"[:300]
    return {"executable": sys.executable, "prefix": sys.prefix, "python": platform.python_version(),
            "machine": platform.machine(), "modules": modules}


def executor_probes(spark: SparkSession, tasks: int) -> list[dict]:
    found = spark.sparkContext.parallelize(range(tasks), tasks).map(probe).collect()
    return list({p["prefix"]: p for p in found}.values())


def check(spark: SparkSession, tables_root: str, run_id: str, *, tasks: int = 2) -> dict:
    from jobs.batch_context import code_version
    from jobs.smoke import delta_time_travel

    run_id = assert_run_id(run_id)
    driver, executors = probe(), executor_probes(spark, tasks)
    delta = delta_time_travel(spark, catalog.location(tables_root, "meta.smoke"), run_id)
    broken = [f"{side}: {name} {value}" for side, found in [("driver", driver), *[("executor", e) for e in executors]]
              for name, value in found["modules"].items() if str(value).startswith("FAILED")]
    return {"run_id": run_id, "code_version": code_version(), "driver": driver, "executors": executors,
            "delta": delta, "broken": broken, "ok": not broken and delta["rows_then"] == 2}


def describe(summary: dict) -> str:
    verdict = "OK" if summary["ok"] else "BROKEN"
    lines = [f"environment {verdict} (run {summary['run_id']}, code {summary['code_version']})",
             f"  driver    python {summary['driver']['python']} {summary['driver']['machine']} "
             f"prefix {summary['driver']['prefix']}"]
    lines += [f"  executor  python {e['python']} {e['machine']} prefix {e['prefix']}" for e in summary["executors"]]
    lines.append(f"  delta     version {summary['delta']['version_read']} has {summary['delta']['rows_then']} rows")
    lines += [f"  broken    {item}" for item in summary["broken"]]
    return "\n".join(lines)


def _run(ctx: JobContext, args: dict) -> dict:
    return check(ctx.spark, ctx.settings.tables_root, args["run_id"], tasks=args["tasks"])


JOB = Job(
    name="environment", group="job", module="jobs.environment", run=_run, describe=describe,
    exit_code=lambda summary: 0 if summary["ok"] else 1,
    summary="Prove the Python environment, the code and Delta work on the driver and the executors.",
    options=(RUN_ID, Option("--tasks", "How many executor tasks report their environment.",
                            parse=int_between(1, 64), default=2, metavar="N")),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
