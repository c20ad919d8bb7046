"""Helpers shared by the test modules (fixtures live in conftest.py; plain functions live here)."""

from __future__ import annotations

import io
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from common import catalog, delta, tables

# The scratch databases' admin password reaches configured-endpoint settings through this variable.
PASSWORD_ENV = "LEDGERLANE_TEST_HL_PG_PASSWORD"


def make_home(prefix: str) -> Path:
    """A scratch home the runuser'd PostgreSQL can traverse (pytest's tmp_path is 0700)."""
    import tempfile

    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)
    return home


def unique(prefix: str) -> str:
    """An identity no other test uses: tests share services and some tables are append-only."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def isolated(settings, tmp_path: Path, topic: str, *, max_offsets: int = 700):
    """Settings with their own topic, tables and checkpoints, so tests never see each other's data."""
    storage = settings.storage.model_copy(update={
        "tables_root": str(tmp_path / "tables"), "checkpoints_root": str(tmp_path / "checkpoints"),
        "evidence_root": str(tmp_path / "evidence")})
    kafka = settings.kafka.model_copy(update={"topic": topic, "max_offsets_per_trigger": max_offsets,
                                              "consumer_group": f"group-{topic}"})
    return settings.model_copy(update={"storage": storage, "kafka": kafka})


def write_config(local, path: Path, bootstrap: str) -> Path:
    """A configuration file with exactly ``local``'s storage and topic, for the CLI and spark-submit doors."""
    path.write_text(
        f'env = "local"\n[storage]\ntables_root = "{local.tables_root}"\ncheckpoints_root = "{local.checkpoints_root}"\n'
        f'evidence_root = "{local.evidence_root}"\n[spark]\nshuffle_partitions = 2\n'
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\ntopic = "{local.kafka.topic}"\n'
        f'consumer_group = "{local.kafka.consumer_group}"\nmax_offsets_per_trigger = {local.kafka.max_offsets_per_trigger}\n',
        encoding="utf-8")
    return path


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``ledgerlane <args>`` in this process (joining the test SparkSession): (exit code, stdout, stderr)."""
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def table_state(spark, tables_root: str) -> dict[str, tuple[int, int]]:
    """(Delta version, row count) of every catalog table that exists under ``tables_root``."""
    state = {}
    for name, location in catalog.catalog(tables_root).items():
        if tables.exists(spark, location):
            state[name] = (delta.latest_version(spark, location),
                           spark.read.format("delta").load(location).count())
    return state


def recreate_topic(bootstrap: str, topic: str, partitions: int, timeout_s: float = 60.0) -> None:
    """Delete ``topic`` on the real broker and create it again under the same name (a new topic id)."""
    import time

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    from common.kafka_admin import admin

    client = admin(bootstrap)
    client.delete_topics([topic], operation_timeout=30)[topic].result(timeout=30)
    deadline = time.monotonic() + timeout_s
    while True:   # deletion completes asynchronously; creation is refused until it has
        try:
            client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def delete_records_before(bootstrap: str, topic: str, offsets: dict[int, int]) -> None:
    """Advance each partition's earliest retained offset, as retention would."""
    from confluent_kafka import TopicPartition

    from common.kafka_admin import admin

    client = admin(bootstrap)   # keep a reference: a collected client never completes its futures
    futures = client.delete_records([TopicPartition(topic, p, o) for p, o in offsets.items()])
    for future in futures.values():
        future.result(timeout=30)


def create_database(admin: dict, name: str) -> dict:
    """An empty database in the admin's cluster; returns the admin parameters pointing at it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(**{**admin, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return {**admin, "dbname": name}


def drop_database(admin: dict, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(**{**admin, "dbname": "postgres"}, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


HUMAN_LOOP_TABLES = ("label_events", "cases", "case_events")


def human_loop_counts(params: dict) -> dict[str, int]:
    """Row counts of the append-only human-loop tables (as the admin), to prove a refusal stored nothing."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(**params) as conn:
        return {name: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier("human_loop", name)))
                .fetchone()[0] for name in HUMAN_LOOP_TABLES}


def cli_invoker(config: Path, home: Path):
    """``invoke(capsys, *args)`` runs ``ledgerlane --home H --config C args`` in-process: (code, stdout, stderr)."""
    from cli.main import main

    def invoke(capsys, *args: str) -> tuple[int, str, str]:
        code = main(["--home", str(home), "--config", str(config), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def add_label_args(*extra: str) -> tuple[str, ...]:
    """``labels add`` for a new account with the usual label and actor; ``extra`` adds options."""
    return ("labels", "add", "--account", unique("acct"), "--label", "fraud", "--actor", "analyst-3", *extra)


def assert_refused(result: tuple[int, str, str], exit_code: int, *fragments: str) -> str:
    """A refusal as a person sees it: the exit code, one paragraph on stderr naming each fragment, no trace."""
    code, out, err = result
    assert code == exit_code, err
    assert "Traceback" not in out + err and "unexpected" not in err, err
    err = "\n".join(line for line in err.splitlines() if not line.startswith("  · "))   # progress lines
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    return err


def migrations_up_to(version: int, folder: Path) -> Path:
    """A copy of the migrations folder holding only V001..V<version>: a database as it was before later ones."""
    from human_loop import migrate

    folder.mkdir()
    for path in sorted(migrate.default_folder().glob("V*.sql"))[:version]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


# ---- EMR Serverless (tests/test_emr*.py) ---------------------------------------------------------------

EMR_REGION = "us-east-1"
EMR_ACCOUNT = "123456789012"


class ModelViolation(AssertionError):
    """A request botocore's own validation let through but the service model forbids (max, pattern, enum)."""


def assert_matches_model(params, shape, path: str = "") -> None:
    """Check ``params`` against the service model's ``max``, ``pattern`` and ``enum`` constraints, which
    botocore's client-side validation (types, required members, ``min``) does not check."""
    meta, kind = shape.metadata, shape.type_name
    if kind == "structure" and isinstance(params, dict):
        for name, value in params.items():
            assert_matches_model(value, shape.members[name], f"{path}.{name}")
    elif kind == "list" and isinstance(params, list):
        _assert_size(len(params), meta, path)
        for i, item in enumerate(params):
            assert_matches_model(item, shape.member, f"{path}[{i}]")
    elif kind == "map" and isinstance(params, dict):
        _assert_size(len(params), meta, path)
        for key, value in params.items():
            assert_matches_model(key, shape.key, f"{path}<key {key}>")
            assert_matches_model(value, shape.value, f"{path}[{key}]")
    elif kind == "string" and isinstance(params, str):
        _assert_size(len(params), meta, path)
        if shape.enum and params not in shape.enum:
            raise ModelViolation(f"{path}: {params!r} is not one of {shape.enum}")
        if "pattern" in meta and _compiled(meta["pattern"]).fullmatch(params) is None:
            raise ModelViolation(f"{path}: {params[:80]!r} does not match the pattern {meta['pattern']!r}")
    elif kind in ("integer", "long") and isinstance(params, int) and "max" in meta and params > meta["max"]:
        raise ModelViolation(f"{path}: {params} is above the maximum {meta['max']}")


def _compiled(pattern: str):
    import re

    return re.compile(pattern, flags=re.DOTALL)   # every pattern of the operations ledgerlane calls compiles


def _assert_size(size: int, meta: dict, path: str) -> None:
    if "max" in meta and size > meta["max"]:
        raise ModelViolation(f"{path}: length {size} is above the maximum {meta['max']}")


def strict_session(region: str = EMR_REGION, calls: list | None = None):
    """A boto3 session whose clients validate every request against the whole service model (and record
    (operation, params) in ``calls``), on top of botocore's own validation, which stays on."""
    import boto3

    session = boto3.session.Session(region_name=region, aws_access_key_id="testing",
                                    aws_secret_access_key="testing")

    def check(params, model, **_):
        assert_matches_model(params, model.input_shape, model.name)
        if calls is not None:
            calls.append((model.name, params))

    session.events.register("before-parameter-build.*.*", check)
    return session


def emr_config(path: Path, *, bucket: str = "ll-lake", app_id: str = "", extra: str = "") -> Path:
    """A complete EMR configuration (as conf/emr.example.toml, filled in) pointing at a moto bucket."""
    path.write_text(
        f'env = "emr"\n[storage]\ntables_root = "s3://{bucket}/tables"\nevidence_root = "s3://{bucket}/evidence"\n'
        f'checkpoints_root = "s3://{bucket}/checkpoints"\n[spark]\nprofile = "emr"\nmaster = ""\n'
        '[kafka]\nbootstrap_servers = "b-1.msk.example:9096"\n[postgres]\nhost = "db.example"\nport = 5432\n'
        f'user = "ledgerlane_app"\n[emr]\napplication_id = "{app_id or "00appid000000000"}"\n'
        f'execution_role_arn = "arn:aws:iam::{EMR_ACCOUNT}:role/ledgerlane-emr-job"\n'
        f'artifacts_uri = "s3://{bucket}/artifacts"\nlogs_uri = "s3://{bucket}/logs"\nregion = "{EMR_REGION}"\n'
        f'poll_seconds = 0\n{extra}', encoding="utf-8")
    return path


def set_job_run_state(app_id: str, job_run_id: str, state: str, details: str = "") -> None:
    """What EMR would do to a job run (moto finishes every run SUCCESS at once)."""
    from moto.emrserverless.models import emrserverless_backends

    for run in emrserverless_backends[EMR_ACCOUNT][EMR_REGION].job_runs[app_id]:
        if run.id == job_run_id:
            run.state, run.state_details = state, details
            return
    raise AssertionError(f"no job run {job_run_id} in application {app_id}")


def put_driver_log(s3, bucket: str, app_id: str, job_run_id: str, kind: str, text: str) -> None:
    """A driver log where EMR Serverless writes it under the run's logUri."""
    import gzip

    key = f"logs/applications/{app_id}/jobs/{job_run_id}/SPARK_DRIVER/{kind}.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(text.encode()))


def moto_lists_no_runs_as_empty(app_id: str) -> None:
    """moto answers ListJobRuns for an application without runs with ResourceNotFound; EMR answers an
    empty list. Give the application its empty list, as the service has it."""
    from moto.emrserverless.models import emrserverless_backends

    emrserverless_backends[EMR_ACCOUNT][EMR_REGION].job_runs.setdefault(app_id, [])
