"""One configuration model for every entrypoint: ``conf/<env>.toml`` + CLI flags + environment.

Loaded once in ``main``; plain values are passed down from there. Unknown or mistyped keys are
errors that name the file and the key. Secrets never live in files: only their environment
variable names do.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import ConfigError
from common.home import resolve_cache, resolve_home

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
ENV_NAME_VAR = "LEDGERLANE_ENV"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SECRET_ARN_PATTERN = r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+)?$"


class StorageConfig(_Section):
    # Empty means "<home>/tables" so a local run needs no configuration at all.
    tables_root: str = ""
    evidence_root: str = ""
    checkpoints_root: str = ""


class SparkConfig(_Section):
    profile: Literal["local", "emr"] = "local"
    master: str = "local[2]"
    shuffle_partitions: int = Field(default=4, ge=1, le=10_000)
    driver_memory: str = "2g"
    ui_enabled: bool = False
    log_level: str = "WARN"


class KafkaConfig(_Section):
    # Empty means "the broker `ledgerlane services up` started under this home".
    bootstrap_servers: str = ""
    topic: str = "ledgerlane.transactions"
    partitions: int = Field(default=3, ge=1, le=1000)
    consumer_group: str = "ledgerlane-ingest"
    max_offsets_per_trigger: int = Field(default=50_000, ge=1)
    # Empty: plaintext (the local broker). MSK with SASL/SCRAM: "SASL_SSL" + "SCRAM-SHA-512", and the
    # user name and password in the Secrets Manager secret ``sasl_secret_arn`` (JSON: username, password).
    security_protocol: Literal["", "SASL_SSL"] = ""
    sasl_mechanism: Literal["", "SCRAM-SHA-512"] = ""
    sasl_secret_arn: str = Field(default="", pattern=SECRET_ARN_PATTERN)

    @model_validator(mode="after")
    def _sasl_complete(self) -> "KafkaConfig":
        chosen = [bool(self.security_protocol), bool(self.sasl_mechanism), bool(self.sasl_secret_arn)]
        if any(chosen) and not all(chosen):
            raise ValueError("security_protocol, sasl_mechanism and sasl_secret_arn are set together or not at all")
        return self


class PostgresConfig(_Section):
    # Empty host means "the cluster `ledgerlane services up` started under this home".
    host: str = ""
    port: int = Field(default=0, ge=0, le=65535)
    database: str = "ledgerlane"
    user: str = ""
    password_env: str = "LEDGERLANE_PG_PASSWORD"
    # In production the password lives in AWS Secrets Manager: the driver reads this secret at job start
    # (a plain string, or JSON with a "password" key as RDS writes it) into ``password_env``, never a file.
    password_secret_arn: str = Field(default="", pattern=SECRET_ARN_PATTERN)
    connect_timeout_s: int = Field(default=5, ge=1, le=120)


POLICY_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
DEFAULT_RULE_WEIGHTS = {"high_amount": 0.35, "card_not_present": 0.15, "high_velocity": 0.3,
                        "many_countries": 0.2, "risky_merchant": 0.4, "risky_country": 0.45}


class DecisionConfig(_Section):
    """The versioned decision policy: rules with weights, a score, two thresholds. Changing any value
    without a new ``policy_version`` is refused at decide time (the version names the behaviour)."""

    policy_version: str = Field(default="policy-2026-12-01", pattern=POLICY_VERSION_PATTERN)
    review_score: float = Field(default=0.4, gt=0, le=1)
    decline_score: float = Field(default=0.75, gt=0, le=1)
    high_amount_minor: int = Field(default=150_000, ge=1)
    velocity_1d: int = Field(default=12, ge=1)
    many_countries_30d: int = Field(default=4, ge=1)
    risky_merchant_fraud_rate: float = Field(default=0.05, gt=0, le=1)
    risky_countries: tuple[str, ...] = ("NG", "RU", "RO", "CN", "HK")
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_RULE_WEIGHTS))
    max_files_per_trigger: int = Field(default=200, ge=1, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> "DecisionConfig":
        if self.review_score >= self.decline_score:
            raise ValueError(f"review_score ({self.review_score}) must be below decline_score ({self.decline_score})")
        unknown = sorted(set(self.weights) - set(DEFAULT_RULE_WEIGHTS))
        if unknown:
            raise ValueError(f"weights for unknown rules {unknown}; known rules: {sorted(DEFAULT_RULE_WEIGHTS)}")
        if any(not 0 <= w <= 1 for w in self.weights.values()):
            raise ValueError("every rule weight must be between 0 and 1")
        return self

    def digest(self) -> str:
        """A fingerprint of the policy's behaviour, recorded next to its version."""
        blob = json.dumps(self.model_dump(mode="json", exclude={"max_files_per_trigger"}), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class LineageConfig(_Section):
    # Empty: OpenLineage events are written into each evidence bundle only; a URL also receives them.
    url: str = ""


class EmrResources(_Section):
    """Spark resources of one job run on EMR Serverless (its worker sizes follow from these)."""

    driver_cores: int = Field(default=2, ge=1, le=16)
    driver_memory: str = Field(default="8g", pattern=r"^[1-9][0-9]{0,3}g$")
    executor_cores: int = Field(default=4, ge=1, le=16)
    executor_memory: str = Field(default="16g", pattern=r"^[1-9][0-9]{0,3}g$")
    max_executors: int = Field(default=20, ge=1, le=1000)


class EmrConfig(_Section):
    """Where and how jobs run on EMR Serverless (``emr/``, ``docs/emr.md``)."""

    application_id: str = Field(default="", pattern=r"^[0-9a-z]{0,64}$")
    execution_role_arn: str = Field(default="", pattern=r"^(arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+)?$",
                                    max_length=2048)
    release_label: str = "emr-spark-8.1.0"
    architecture: Literal["X86_64", "ARM64"] = "X86_64"
    artifacts_uri: str = Field(default="", pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)?$")
    logs_uri: str = Field(default="", pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)?$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    # The interpreter the packed environment's bin/python links to inside the EMR runtime image.
    python_interpreter: str = "/usr/bin/python3.11"
    # Delta concurrent writers on S3: the DynamoDB log store's table (docs/emr.md); "" turns it off.
    delta_log_table: str = Field(default="ledgerlane_delta_log", pattern=r"^([A-Za-z0-9_.-]{3,255})?$")
    batch_timeout_minutes: int = Field(default=240, ge=5, le=10_080)
    batch_max_attempts: int = Field(default=1, ge=1, le=10)
    stream_max_failed_attempts_per_hour: int = Field(default=5, ge=1, le=10)
    poll_seconds: float = Field(default=15.0, ge=0.0, le=600.0)
    resources: EmrResources = EmrResources()
    # Per-job overrides by qualified job name ("stream-ingest", "job-build"); unnamed jobs use ``resources``.
    job_resources: dict[str, EmrResources] = Field(default_factory=dict)


class Settings(_Section):
    env: str
    home: Path
    cache: Path
    storage: StorageConfig = StorageConfig()
    spark: SparkConfig = SparkConfig()
    kafka: KafkaConfig = KafkaConfig()
    postgres: PostgresConfig = PostgresConfig()
    decision: DecisionConfig = DecisionConfig()
    lineage: LineageConfig = LineageConfig()
    emr: EmrConfig = EmrConfig()

    @property
    def tables_root(self) -> str:
        return self.storage.tables_root or str(self.home / "tables")

    @property
    def evidence_root(self) -> str:
        return self.storage.evidence_root or str(self.home / "evidence")

    @property
    def checkpoints_root(self) -> str:
        return self.storage.checkpoints_root or str(self.home / "checkpoints")

    def digest(self) -> str:
        """A stable fingerprint of the effective configuration, for receipts (holds no secrets)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def config_path(env: str | None = None, path: str | os.PathLike[str] | None = None) -> Path:
    """The file for ``--config PATH``, else ``conf/<env>.toml`` with env from ``--env``/``$LEDGERLANE_ENV``/local."""
    if path:
        return Path(path)
    name = env or os.environ.get(ENV_NAME_VAR) or "local"
    return CONF_DIR / f"{name}.toml"


def load_settings(
    env: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    overrides: dict | None = None,
) -> Settings:
    """Read, merge and validate; every problem is a ConfigError naming the file and the key."""
    file = config_path(env, path)
    raw = _read_toml(file)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    resolved_home = resolve_home(home)
    raw["home"] = resolved_home
    raw["cache"] = resolve_cache(resolved_home)
    raw.setdefault("env", file.stem)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(file, exc)) from None


def _read_toml(file: Path) -> dict:
    if not file.is_file():
        known = sorted(p.stem for p in CONF_DIR.glob("*.toml"))
        raise ConfigError(f"config file {file} not found (known environments: {', '.join(known)})")
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None


def _describe(file: Path, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}'")
        else:
            problems.append(f"key '{key}': {err['msg']} (found {err.get('input')!r})")
    return f"config file {file}: " + "; ".join(problems)


def secret_from_env(var: str, *, what: str) -> str:
    """Secrets only ever come from the environment; the error names the variable, never a value."""
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"{what} is not set: export {var} (secrets are read only from the environment)")
    return value
