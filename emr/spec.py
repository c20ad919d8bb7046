"""EMR job specs, derived from each job's one declaration (``common.jobspec.Job``, ``jobs/registry.py``).

A spec is what one job run needs: the ``jobs/submit.py`` arguments (parsed and refused exactly as the
declaration parses them, before anything reaches AWS), the mode (a long-running stream is STREAMING with
a retry policy; a stream told ``--until-caught-up`` ends, so it is a BATCH like every job), and the
resources. ``spark_conf`` adds what every run shares: the packed environment, the code, the jars and
Delta's DynamoDB log store for concurrent writers on S3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config import EmrResources, Settings
from common.errors import ConfigError
from common.jobspec import COMMON_FLAGS, Job

BATCH, STREAMING = "BATCH", "STREAMING"
PASSED_THROUGH = ("--verbose",)          # the common flags a submission may carry to the driver
MAX_ARGUMENT_CHARS = 4096                # per argument: a reason or a cut-off, never a document
PYTHON = "./environment/bin/python"


def qualified_name(job: Job) -> str:
    """The name ``jobs/submit.py`` resolves without ambiguity: ``job-build``, ``stream-ingest``, ``close``."""
    return f"{job.group}-{job.name}" if job.group else job.name


@dataclass(frozen=True)
class JobSpec:
    job: Job
    run_id: str
    positional: tuple[str, ...]
    arguments: tuple[str, ...]            # positional + options, canonical order, as the driver receives them
    mode: str
    resources: EmrResources

    @property
    def step(self) -> str:
        """``job-build.account_features``: the job and its positional arguments, one name per step of a run."""
        return ".".join((qualified_name(self.job), *self.positional))

    def entry_point_arguments(self, env_name: str) -> list[str]:
        return [qualified_name(self.job), *self.arguments, "--env", env_name]


# ---- arguments: parsed by the declaration --------------------------------------------------------------

def parse(job: Job, argv: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(positional values, raw option texts) from ``argv``; unknown or repeated options are refused."""
    flags = {option.flag: option for option in job.options}
    for token in argv:
        _assert_bounded(token)
    positional, raw, tokens = [], {}, list(argv)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("--"):
            positional.append(token)
            continue
        flag, has_value, value = token.partition("=")
        if flag in PASSED_THROUGH:
            raw[flag] = True
            continue
        option = _option(job, flags, flag)
        if option.dest in raw:
            raise ConfigError(f"{flag} is given twice for job {qualified_name(job)}")
        if option.is_flag:
            if has_value:
                raise ConfigError(f"{flag} is a flag and takes no value, found {token!r}")
            raw[option.dest] = True
        else:
            if not has_value and (not tokens or tokens[0].startswith("--")):
                raise ConfigError(f"{flag} needs a value (job {qualified_name(job)})")
            raw[option.dest] = value if has_value else tokens.pop(0)
    return _assert_positional(job, positional), raw


def _option(job: Job, flags: dict, flag: str):
    if flag in COMMON_FLAGS:
        raise ConfigError(f"{flag} is not a job argument on EMR: `ledgerlane emr` passes the configuration it "
                          "packaged (conf/<env>.toml in the code archive)")
    if flag not in flags:
        known = ", ".join(sorted(flags)) or "none"
        raise ConfigError(f"unknown option {flag} for job {qualified_name(job)}; its options: {known}")
    return flags[flag]


def _assert_bounded(token: str) -> None:
    if len(token) > MAX_ARGUMENT_CHARS:
        raise ConfigError(f"an argument of {len(token)} characters is refused: at most {MAX_ARGUMENT_CHARS}")


def _assert_positional(job: Job, positional: list[str]) -> tuple[str, ...]:
    expected = [argument.name for argument in job.arguments]
    if len(positional) != len(expected):
        raise ConfigError(f"job {qualified_name(job)} takes {len(expected)} argument(s) "
                          f"({', '.join(expected) or 'none'}), found {len(positional)}: {positional}")
    for argument, value in zip(job.arguments, positional):
        if argument.choices and value not in argument.choices:
            raise ConfigError(f"{argument.name} must be one of {', '.join(argument.choices)}, found {value!r}")
    return tuple(positional)


def canonical_arguments(job: Job, positional: tuple[str, ...], raw: dict[str, Any]) -> tuple[str, ...]:
    """Positional values, then the given options in declaration order: one spelling per request."""
    out = list(positional)
    for option in job.options:
        value = raw.get(option.dest)
        if value is None or value is False:
            continue
        out += [option.flag] if option.is_flag else [option.flag, str(value)]
    return tuple(out + [flag for flag in PASSED_THROUGH if raw.get(flag)])


def spec_for(job: Job, argv: list[str], settings: Settings) -> JobSpec:
    """The spec for ``job`` with ``argv``; every problem is a ConfigError raised before AWS is called."""
    positional, raw = parse(job, argv)
    values = job.values({k: v for k, v in raw.items() if not k.startswith("--")})
    run_id = values.get("run_id")
    if not run_id:
        raise ConfigError(f"job {qualified_name(job)} needs --run-id on EMR: the run's client token and "
                          "job run name are derived from (run id, job, attempt)")
    mode = STREAMING if job.streaming and not values.get("until_caught_up") else BATCH
    resources = settings.emr.job_resources.get(qualified_name(job), settings.emr.resources)
    return JobSpec(job=job, run_id=run_id, positional=positional, arguments=canonical_arguments(job, positional, raw),
                   mode=mode, resources=resources)


# ---- Spark configuration -------------------------------------------------------------------------------

def spark_conf(settings: Settings, package, spec: JobSpec) -> dict[str, str]:
    from emr.jars import RUNTIME_DELTA_JARS

    conf = {
        "spark.archives": f"{package.environment}#environment,{package.code}#code",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": PYTHON,
        "spark.emr-serverless.driverEnv.PYTHONPATH": "./code",
        "spark.executorEnv.PYTHONPATH": "./code",
        "spark.jars": ",".join([*RUNTIME_DELTA_JARS, *package.jars]),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        **resource_conf(spec.resources),
        **log_store_conf(settings),
    }
    return conf


def resource_conf(resources: EmrResources) -> dict[str, str]:
    return {
        "spark.driver.cores": str(resources.driver_cores),
        "spark.driver.memory": resources.driver_memory,
        "spark.executor.cores": str(resources.executor_cores),
        "spark.executor.memory": resources.executor_memory,
        "spark.dynamicAllocation.maxExecutors": str(resources.max_executors),
    }


def log_store_conf(settings: Settings) -> dict[str, str]:
    """Delta's S3 log store gives mutual exclusion only within one driver; with several jobs writing the
    same tables (ingest, decide and cases all append to meta.stream_apps) commits go through DynamoDB."""
    table = settings.emr.delta_log_table
    if not table:
        return {}
    return {
        "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": table,
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": settings.emr.region,
    }


def submit_parameters(conf: dict[str, str]) -> str:
    """``--conf k=v …``; EMR splits the text on spaces, so a key or value with whitespace is refused."""
    parts = []
    for key, value in conf.items():
        if not key or not value or any(ch.isspace() for ch in key + value):
            raise ConfigError(f"Spark setting {key!r} must be non-empty and free of whitespace, found {value!r}")
        parts.append(f"--conf {key}={value}")
    return " ".join(parts)
