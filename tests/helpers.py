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
