"""The typed EMR Serverless submitter: start a job run once, watch it to its end, read its driver's logs.

One (run id, step, attempt) is one job run. Its ``clientToken`` is derived from those three, so a
repeated StartJobRun returns the run already started; because not every implementation honours the
token (local mocks do not), the submitter first looks for a run of the same name, and refuses one
whose request differs (``IdempotencyConflict``): a key reused with other content is an error.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from common.config import Settings
from common.errors import ConfigError, IdempotencyConflict, ServiceError
from emr.aws import Clients, error_code
from emr.package import Package, s3_parts
from emr.spec import STREAMING, JobSpec, spark_conf, submit_parameters

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})
FAILED_STATES = frozenset({"FAILED", "CANCELLED"})
NAME = re.compile(r"^ledgerlane/(?P<run_id>[^/]+)/(?P<step>[^/]+)/attempt-(?P<attempt>[0-9]{1,4})$")
LOOKBACK = timedelta(days=90)
HEARTBEAT_S = 60.0
MAX_LOG_LINE = 2000


def client_token(run_id: str, step: str, attempt: int) -> str:
    """64 hex characters (the API's limit and alphabet), the same for the same (run, step, attempt)."""
    return hashlib.sha256(f"ledgerlane\0{run_id}\0{step}\0{attempt}".encode()).hexdigest()


def run_name(run_id: str, step: str, attempt: int) -> str:
    return f"ledgerlane/{run_id}/{step}/attempt-{attempt}"


def request_digest(spec: JobSpec) -> str:
    """What a (run, step, attempt) promises to run: the job, its arguments and its mode (not the package,
    so a resumed run keeps the job runs it already has after a code change)."""
    blob = json.dumps([spec.step, list(spec.arguments), spec.mode]).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def start_request(spec: JobSpec, package: Package, settings: Settings, attempt: int) -> dict:
    """The StartJobRun request for ``spec`` (pure: tests compare it whole)."""
    emr = settings.emr
    streaming = spec.mode == STREAMING
    retry = ({"maxFailedAttemptsPerHour": emr.stream_max_failed_attempts_per_hour} if streaming
             else {"maxAttempts": emr.batch_max_attempts})
    return {
        "applicationId": emr.application_id,
        "clientToken": client_token(spec.run_id, spec.step, attempt),
        "executionRoleArn": emr.execution_role_arn,
        "name": run_name(spec.run_id, spec.step, attempt),
        "mode": spec.mode,
        "retryPolicy": retry,
        "executionTimeoutMinutes": 0 if streaming else emr.batch_timeout_minutes,   # 0: a stream never times out
        "jobDriver": {"sparkSubmit": {
            "entryPoint": package.entry_point,
            "entryPointArguments": spec.entry_point_arguments(package.env_name),
            "sparkSubmitParameters": submit_parameters(spark_conf(settings, package, spec)),
        }},
        "configurationOverrides": {"monitoringConfiguration": {
            "s3MonitoringConfiguration": {"logUri": emr.logs_uri.rstrip("/") + "/"}}},
        "tags": {"ledgerlane:run-id": spec.run_id, "ledgerlane:step": spec.step,
                 "ledgerlane:attempt": str(attempt), "ledgerlane:request": request_digest(spec),
                 "ledgerlane:code": package.code_digest},
    }


@dataclass(frozen=True)
class JobRun:
    """One job run as ledgerlane names it."""

    job_run_id: str
    run_id: str
    step: str
    attempt: int
    state: str
    details: str = ""

    @property
    def failed(self) -> bool:
        return self.state in FAILED_STATES

    def to_dict(self) -> dict:
        return {"job_run_id": self.job_run_id, "run_id": self.run_id, "step": self.step, "attempt": self.attempt,
                "state": self.state, "details": self.details}


def from_summary(summary: dict) -> JobRun | None:
    match = NAME.match(summary.get("name") or "")
    if match is None:
        return None
    return JobRun(summary.get("id") or summary["jobRunId"], match["run_id"], match["step"], int(match["attempt"]),
                  summary["state"], summary.get("stateDetails") or "")


class Submitter:
    """Start, find, watch, cancel and read the logs of job runs in one EMR Serverless application."""

    def __init__(self, clients: Clients, settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, progress: Callable[[str], None] = lambda _: None):
        self.emr, self.s3, self.settings = clients.emr, clients.s3, settings
        self.app = settings.emr.application_id
        self.sleep, self.clock, self.progress = sleep, clock, progress

    # ---- finding -------------------------------------------------------------------------------------

    def runs_of(self, run_id: str) -> list[JobRun]:
        """Every job run of ``run_id`` in the application (from their names), oldest attempt first."""
        after = datetime.now(timezone.utc) - LOOKBACK
        found = []
        pages = self._call("ListJobRuns", lambda: self.emr.get_paginator("list_job_runs").paginate(
            applicationId=self.app, createdAtAfter=after).build_full_result())
        for summary in pages.get("jobRuns", []):
            run = from_summary(summary)
            if run is not None and run.run_id == run_id:
                found.append(run)
        return sorted(found, key=lambda r: (r.step, r.attempt))

    def find(self, run_id: str, step: str, attempt: int) -> JobRun | None:
        return next((r for r in self.runs_of(run_id) if r.step == step and r.attempt == attempt), None)

    def describe(self, job_run_id: str) -> dict:
        return self._call("GetJobRun", lambda: self.emr.get_job_run(applicationId=self.app,
                                                                    jobRunId=job_run_id))["jobRun"]

    # ---- starting ------------------------------------------------------------------------------------

    def start(self, spec: JobSpec, package: Callable[[], Package], attempt: int = 1) -> tuple[JobRun, bool]:
        """(the job run, whether this call started it). An existing run of the same name is returned,
        and ``package`` (built and uploaded on demand) is asked for only when a run must start."""
        if not 1 <= attempt <= 9999:
            raise ConfigError(f"attempt must be between 1 and 9999, found {attempt}")
        existing = self.find(spec.run_id, spec.step, attempt)
        if existing is not None:
            self._assert_same_request(existing, spec)
            return existing, False
        request = start_request(spec, package(), self.settings, attempt)
        answer = self._call("StartJobRun", lambda: self.emr.start_job_run(**request))
        return JobRun(answer["jobRunId"], spec.run_id, spec.step, attempt, "SUBMITTED"), True

    def _assert_same_request(self, existing: JobRun, spec: JobSpec) -> None:
        tags = self.describe(existing.job_run_id).get("tags") or {}
        if tags.get("ledgerlane:request") != request_digest(spec):
            raise IdempotencyConflict(
                f"job run {existing.job_run_id} ({run_name(spec.run_id, spec.step, existing.attempt)}) was "
                f"started with other arguments than {' '.join(spec.arguments)}; submit the new arguments as "
                f"another attempt (--attempt {existing.attempt + 1}) or under another run id")

    # ---- watching ------------------------------------------------------------------------------------

    def wait(self, run: JobRun, *, timeout_s: float | None = None, until_running: bool = False) -> JobRun:
        """Poll until a terminal state (or RUNNING when ``until_running``); progress on each change."""
        started, last_state, last_said = self.clock(), None, self.clock()
        while True:
            job = self.describe(run.job_run_id)
            state, elapsed = job["state"], self.clock() - started
            if state != last_state or self.clock() - last_said >= HEARTBEAT_S:
                self.progress(f"{run.step} attempt {run.attempt} ({run.job_run_id}): {state} "
                              f"[{_clock(elapsed)}]")
                last_state, last_said = state, self.clock()
            if state in TERMINAL or (until_running and state == "RUNNING"):
                return JobRun(run.job_run_id, run.run_id, run.step, run.attempt, state, job.get("stateDetails") or "")
            if timeout_s is not None and elapsed >= timeout_s:
                return JobRun(run.job_run_id, run.run_id, run.step, run.attempt, state, "still going")
            self.sleep(self.settings.emr.poll_seconds)

    def cancel(self, job_run_id: str) -> JobRun | None:
        self._call("CancelJobRun", lambda: self.emr.cancel_job_run(applicationId=self.app, jobRunId=job_run_id))
        return from_summary(self.describe(job_run_id))

    # ---- logs ----------------------------------------------------------------------------------------

    def log_keys(self, job_run_id: str) -> dict[str, str]:
        """The driver's ``stdout.gz`` and ``stderr.gz`` keys; with retries, those of the latest attempt."""
        bucket, prefix = s3_parts(self.settings.emr.logs_uri)
        base = f"{prefix}/applications/{self.app}/jobs/{job_run_id}/".lstrip("/")
        keys = self._call("ListObjectsV2", lambda: [item["Key"] for page in self.s3.get_paginator(
            "list_objects_v2").paginate(Bucket=bucket, Prefix=base) for item in page.get("Contents", [])])
        found = {}
        for kind in ("stdout", "stderr"):
            matching = sorted(key for key in keys if key.endswith(f"SPARK_DRIVER/{kind}.gz"))
            if matching:
                found[kind] = matching[-1]
        return found

    def driver_logs(self, job_run_id: str, *, lines: int = 200) -> dict[str, str]:
        """The last ``lines`` lines of the driver's stdout and stderr, read in bounded memory."""
        bucket, _ = s3_parts(self.settings.emr.logs_uri)
        logs = {}
        for kind, key in self.log_keys(job_run_id).items():
            body = self._call("GetObject", lambda: self.s3.get_object(Bucket=bucket, Key=key))["Body"]
            logs[kind] = tail(body, lines)
        return logs

    # ---- errors --------------------------------------------------------------------------------------

    def _call(self, operation: str, call):
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        try:
            return call()
        except ParamValidationError as exc:
            raise ConfigError(f"{operation} request refused before sending: {exc}") from None
        except ClientError as exc:
            raise ServiceError(f"EMR Serverless or S3 refused {operation}: {error_code(exc)}: "
                               f"{exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")) from None
        except BotoCoreError as exc:
            raise ServiceError(f"AWS call {operation} failed: {type(exc).__name__}: {exc}") from None


def tail(body, lines: int) -> str:
    """The last ``lines`` lines of a gzip stream; each line cut at MAX_LOG_LINE characters."""
    kept: deque[str] = deque(maxlen=max(1, lines))
    try:
        with gzip.GzipFile(fileobj=body) as stream:
            for raw in stream:
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                kept.append(text if len(text) <= MAX_LOG_LINE else text[:MAX_LOG_LINE] + " …")
    except (OSError, EOFError) as exc:
        kept.append(f"[log is not readable gzip: {exc}]")
    return "\n".join(kept)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

