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
    # Docstrings under the fields are their descriptions: docs/configuration.md is generated from them.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


SECRET_ARN_PATTERN = r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+)?$"


class StorageConfig(_Section):
    """Where tables, evidence and checkpoints live: local folders or ``s3://`` prefixes."""

    tables_root: str = ""
    """Root of every Delta table (``<root>/<layer>/<table>``). Empty: ``<home>/tables``."""
    evidence_root: str = ""
    """Root of the evidence bundles, one folder per run. Empty: ``<home>/evidence``."""
    checkpoints_root: str = ""
    """Root of the streaming checkpoints. Empty: ``<home>/checkpoints``."""


class SparkConfig(_Section):
    """How the one SparkSession is built (``common/spark.py``)."""

    profile: Literal["local", "emr"] = "local"
    """``local`` resolves the connector jars itself; ``emr`` uses what the job was submitted with."""
    master: str = "local[2]"
    """Spark master for the local profile (``spark-submit`` decides on EMR)."""
    shuffle_partitions: int = Field(default=4, ge=1, le=10_000)
    """``spark.sql.shuffle.partitions``."""
    driver_memory: str = "2g"
    """Driver memory for the local profile."""
    ui_enabled: bool = False
    """Whether the Spark UI starts."""
    log_level: str = "WARN"
    """Spark's log level once the session runs (``--verbose`` also shows start-up logging)."""


class KafkaConfig(_Section):
    """The bus ingest reads."""

    bootstrap_servers: str = ""
    """Kafka bootstrap servers. Empty: the broker ``ledgerlane services up`` started under this home."""
    topic: str = "ledgerlane.transactions"
    """The transactions topic."""
    partitions: int = Field(default=3, ge=1, le=1000)
    """Partitions when the simulator creates the topic."""
    consumer_group: str = "ledgerlane-ingest"
    """Consumer group that mirrors ingest's committed position for standard lag tooling."""
    max_offsets_per_trigger: int = Field(default=50_000, ge=1)
    """At most this many records per ingest batch."""
    security_protocol: Literal["", "SASL_SSL"] = ""
    """Empty: plaintext (the local broker). MSK with SASL/SCRAM: ``SASL_SSL``."""
    sasl_mechanism: Literal["", "SCRAM-SHA-512"] = ""
    """With ``SASL_SSL``: ``SCRAM-SHA-512``."""
    sasl_secret_arn: str = Field(default="", pattern=SECRET_ARN_PATTERN)
    """The Secrets Manager secret holding the SASL user name and password (JSON: username, password)."""

    @model_validator(mode="after")
    def _sasl_complete(self) -> "KafkaConfig":
        chosen = [bool(self.security_protocol), bool(self.sasl_mechanism), bool(self.sasl_secret_arn)]
        if any(chosen) and not all(chosen):
            raise ValueError("security_protocol, sasl_mechanism and sasl_secret_arn are set together or not at all")
        return self


class PostgresConfig(_Section):
    """The human-loop database."""

    host: str = ""
    """Host. Empty: the cluster ``ledgerlane services up`` started under this home."""
    port: int = Field(default=0, ge=0, le=65535)
    """Port (0 with a host: 5432)."""
    database: str = "ledgerlane"
    """Database name."""
    user: str = ""
    """Login role (required with a host); the application switches to ``ledgerlane_app`` at connect time."""
    password_env: str = "LEDGERLANE_PG_PASSWORD"
    """Name of the environment variable holding the password (never the password itself)."""
    password_secret_arn: str = Field(default="", pattern=SECRET_ARN_PATTERN)
    """In production: the Secrets Manager secret the driver reads at job start (a string, or JSON with a
    ``password`` key as RDS writes it) into ``password_env``; never a file."""
    connect_timeout_s: int = Field(default=5, ge=1, le=120)
    """Seconds to wait for a connection."""


POLICY_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
# Sane bounds for the rules' thresholds (a value past them is a typo, and would overflow Spark's longs).
MAX_THRESHOLD_MINOR = 10**12
MAX_THRESHOLD_COUNT = 1_000_000
DEFAULT_RULE_WEIGHTS = {"high_amount": 0.35, "card_not_present": 0.15, "micro_card_not_present": 0.45,
                        "high_velocity": 0.3, "many_countries": 0.2, "risky_merchant": 0.4, "risky_country": 0.45}


class DecisionConfig(_Section):
    """The versioned decision policy: rules with weights, a score, two thresholds. Changing any value
    without a new ``policy_version`` is refused at decide time (the version names the behaviour). The
    defaults are calibrated on the simulator's labelled traffic (``docs/decisions.md``, "The default policy")."""

    policy_version: str = Field(default="policy-2026-12-07", pattern=POLICY_VERSION_PATTERN)
    """The policy's name in every decision, action and audit record (and in decision ids)."""
    review_score: float = Field(default=0.4, gt=0, le=1)
    """A score at or above this is REVIEW (opens a case)."""
    decline_score: float = Field(default=0.75, gt=0, le=1)
    """A score at or above this is DECLINE (blocks the card)."""
    high_amount_minor: int = Field(default=300_000, ge=1, le=MAX_THRESHOLD_MINOR)
    """Rule ``high_amount``: the amount, in minor units, from which it fires."""
    micro_amount_minor: int = Field(default=300, ge=1, le=MAX_THRESHOLD_MINOR)
    """Rule ``micro_card_not_present``: a card-not-present amount, in minor units, below which it fires
    (card testing probes a stolen card with tiny online payments)."""
    velocity_1d: int = Field(default=25, ge=1, le=MAX_THRESHOLD_COUNT)
    """Rule ``high_velocity``: transactions of the account in the last day, from which it fires."""
    many_countries_30d: int = Field(default=9, ge=1, le=MAX_THRESHOLD_COUNT)
    """Rule ``many_countries``: distinct countries of the account in 30 days, from which it fires."""
    risky_merchant_fraud_rate: float = Field(default=0.05, gt=0, le=1)
    """Rule ``risky_merchant``: the merchant's certified fraud rate from which it fires."""
    risky_countries: tuple[str, ...] = ("NG", "RU", "RO", "CN", "HK")
    """Rule ``risky_country``: the countries where it fires."""
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_RULE_WEIGHTS))
    """Weight of each rule in the score. A rule left out (or weighted 0) is switched off."""
    max_files_per_trigger: int = Field(default=200, ge=1, le=100_000)
    """At most this many admitted-table files per decide batch."""

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
    """OpenLineage: events are always written into each evidence bundle."""

    url: str = ""
    """An OpenLineage HTTP endpoint that also receives them (empty: none)."""


class EmrResources(_Section):
    """Spark resources of one job run on EMR Serverless (its worker sizes follow from these)."""

    driver_cores: int = Field(default=2, ge=1, le=16)
    """Cores of the driver."""
    driver_memory: str = Field(default="8g", pattern=r"^[1-9][0-9]{0,3}g$")
    """Memory of the driver."""
    executor_cores: int = Field(default=4, ge=1, le=16)
    """Cores per executor."""
    executor_memory: str = Field(default="16g", pattern=r"^[1-9][0-9]{0,3}g$")
    """Memory per executor."""
    max_executors: int = Field(default=20, ge=1, le=1000)
    """Upper bound of dynamic allocation."""


class EmrConfig(_Section):
    """Where and how jobs run on EMR Serverless (``emr/``, ``docs/emr.md``)."""

    application_id: str = Field(default="", pattern=r"^[0-9a-z]{0,64}$")
    """The EMR Serverless application."""
    execution_role_arn: str = Field(default="", pattern=r"^(arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+)?$",
                                    max_length=2048)
    """The job role (least privilege: docs/iam/)."""
    release_label: str = "emr-spark-8.1.0"
    """The EMR release: the long-term-support ``emr-spark-8.1.0`` (Spark 4.1.1, Delta 4.2.0)."""
    architecture: Literal["X86_64", "ARM64"] = "X86_64"
    """The application's architecture; the packed Python environment is built for it."""
    artifacts_uri: str = Field(default="", pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)?$")
    """Where packages are uploaded (content-hashed keys)."""
    logs_uri: str = Field(default="", pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)?$")
    """Where every job run's driver and executor logs go."""
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    """AWS region."""
    python_interpreter: str = "/usr/bin/python3.11"
    """The interpreter the packed environment's ``bin/python`` links to inside the EMR runtime image."""
    delta_log_table: str = Field(default="ledgerlane_delta_log", pattern=r"^([A-Za-z0-9_.-]{3,255})?$")
    """Delta concurrent writers on S3: the DynamoDB log store's table (docs/emr.md); empty turns it off."""
    batch_timeout_minutes: int = Field(default=240, ge=5, le=10_080)
    """Execution timeout of a BATCH job run."""
    batch_max_attempts: int = Field(default=1, ge=1, le=10)
    """Attempts of a BATCH job run."""
    stream_max_failed_attempts_per_hour: int = Field(default=5, ge=1, le=10)
    """Retry policy of a STREAMING job run."""
    poll_seconds: float = Field(default=15.0, ge=0.0, le=600.0)
    """How often ``ledgerlane emr`` asks for a job run's state while waiting."""
    resources: EmrResources = EmrResources()
    """Spark resources of every job run unless overridden."""
    job_resources: dict[str, EmrResources] = Field(default_factory=dict)
    """Per-job overrides by qualified job name (``stream-ingest``, ``job-build``)."""


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


def reference() -> str:
    """``docs/configuration.md``: every section and key, with its type, default and meaning, from this model."""
    lines = ["# Configuration reference", "",
             "Generated from `common/config.py` (`python -c 'from common.config import reference; print(reference())'`);",
             "`tests/test_config.py` fails when this page and the model disagree.", "",
             "A file is `conf/<env>.toml` (`--env`, `$LEDGERLANE_ENV`, default `local`) or `--config FILE`. Unknown keys",
             "and values of the wrong type are errors that name the file and the key. Secrets are never keys: only",
             "the names of the environment variables that hold them are.", ""]
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if not (isinstance(section, type) and issubclass(section, _Section)):
            continue
        lines += [f"## `[{name}]`", "", (section.__doc__ or "").strip().replace("\n    ", " "), "",
                  "| key | type | default | meaning |", "|---|---|---|---|"]
        for key, item in section.model_fields.items():
            default = item.default_factory() if item.default_factory else item.default
            default = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
            annotation = item.annotation
            kind = annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")
            meaning = " ".join((item.description or "").split())
            lines.append(f"| `{key}` | `{kind}` | `{json.dumps(default)}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)
