"""AWS clients for ``ledgerlane emr`` and the checks a configuration must pass before any call.

Clients keep botocore's client-side validation of every request against the service model on
(``parameter_validation``, botocore's default, set explicitly so no profile can switch it off).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config import Settings
from common.errors import ConfigError


def new_session(region: str):
    """A boto3 session (tests replace this to add their own request checks)."""
    import boto3

    return boto3.session.Session(region_name=region)


@dataclass(frozen=True)
class Clients:
    emr: Any
    s3: Any

    @classmethod
    def for_settings(cls, settings: Settings) -> "Clients":
        from botocore.config import Config

        config = Config(parameter_validation=True, retries={"mode": "standard", "max_attempts": 5},
                        user_agent_extra="ledgerlane")
        session = new_session(settings.emr.region)
        return cls(emr=session.client("emr-serverless", config=config), s3=session.client("s3", config=config))


def assert_ready(settings: Settings) -> None:
    """A configuration that would start a job run doomed to lose data or fail is refused up front."""
    emr, problems = settings.emr, []
    for key in ("application_id", "execution_role_arn", "artifacts_uri", "logs_uri"):
        if not getattr(emr, key):
            problems.append(f"emr.{key} is empty")
    for key in ("tables_root", "evidence_root", "checkpoints_root"):
        value = getattr(settings.storage, key)
        if not value.startswith("s3://"):
            problems.append(f"storage.{key} must be an s3:// URI (a job's local disk is gone when it ends), "
                            f"found {value!r}")
    if settings.spark.profile != "emr":
        problems.append(f"spark.profile must be 'emr' (the local profile resolves jars with Maven), "
                        f"found {settings.spark.profile!r}")
    if not settings.kafka.bootstrap_servers:
        problems.append("kafka.bootstrap_servers is empty (empty means the local broker)")
    if not settings.postgres.host:
        problems.append("postgres.host is empty (empty means the local database)")
    if problems:
        raise ConfigError(f"configuration '{settings.env}' cannot run on EMR Serverless: " + "; ".join(problems))


def error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
