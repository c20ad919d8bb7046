"""Every job and stream ledgerlane runs, declared once each (``common.jobspec.Job``).

The CLI (``cli/``), ``spark-submit jobs/submit.py <job>`` and EMR's job specs (``emr/``) are all
generated from this list; adding a job is one declaration in its module and one line here.
"""

from __future__ import annotations

from common.errors import ConfigError
from common.jobspec import Job
from jobs import (build, certify, closure, decisions, environment, evidence, export_labels, migrate_db, replay,
                  rerun, run, smoke)
from streaming import cases, decide, ingest

JOBS: tuple[Job, ...] = (
    ingest.JOB, decide.JOB, cases.JOB, export_labels.JOB, build.JOB, certify.JOB, rerun.JOB, migrate_db.JOB,
    smoke.JOB, environment.JOB, decisions.JOB, closure.JOB, evidence.SHOW, evidence.VERIFY, run.JOB, replay.JOB,
)


def find(name: str) -> Job:
    """A job by its name, or by ``<group>-<name>`` where names repeat across groups (``evidence-verify``)."""
    for job in JOBS:
        if name in (job.name, f"{job.group}-{job.name}"):
            return job
    raise ConfigError(f"unknown job {name!r}: expected one of {', '.join(job.name for job in JOBS)}")
