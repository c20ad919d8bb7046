"""The foundation works end to end: Delta time travel, Kafka through Spark, PostgreSQL round trip."""

from __future__ import annotations

import json

from chispa import assert_df_equality

from common import catalog, delta
from helpers import isolated
from jobs import smoke


def test_delta_write_twice_then_read_version_zero(spark, settings, tmp_path):
    path = str(tmp_path / "smoke")
    delta.append(smoke.smoke_rows(spark, 0, 2), path, "meta.smoke", "r-test-1", mode="overwrite")
    delta.append(smoke.smoke_rows(spark, 2, 1), path, "meta.smoke", "r-test-1")

    version_zero = spark.read.format("delta").option("versionAsOf", 0).load(path)

    assert_df_equality(version_zero, smoke.smoke_rows(spark, 0, 2), ignore_row_order=True, ignore_nullable=True)
    assert spark.read.format("delta").load(path).count() == 3


def test_every_delta_commit_carries_the_run_id(spark, tmp_path):
    path = str(tmp_path / "stamped")
    delta.append(smoke.smoke_rows(spark, 0, 1), path, "meta.smoke", "r-stamp-7")
    with delta.stamped(spark, "r-stamp-7"):
        spark.sql(f"DELETE FROM delta.`{path}` WHERE id = 0")

    metadata = [json.loads(row.userMetadata)["run_id"] for row in delta.history(spark, path).collect()]

    assert metadata == ["r-stamp-7", "r-stamp-7"]


def test_kafka_message_through_spark_source(spark, kafka_bootstrap):
    result = smoke.kafka_round_trip(spark, kafka_bootstrap, "nonce-kafka-1")

    assert result["messages_found"] == 1


def test_postgres_round_trip_with_psycopg(pg_params):
    hostile = "x'); drop table smoke; --"

    assert smoke.postgres_round_trip(pg_params, hostile) == {"round_trip": True}


def test_smoke_run_summary(spark, settings, services, tmp_path):
    # Tables of its own: another test's smoke run in the session's home would make the version read 2, not 0.
    summary = smoke.run(spark, isolated(settings, tmp_path, smoke.SMOKE_TOPIC), run_id="r-smoke-test")

    assert summary["ok"] is True
    assert summary["delta"] == {"version_read": 0, "rows_then": 2, "rows_now": 3}
    assert catalog.location(settings.tables_root, "meta.smoke").startswith(str(settings.home))


def test_smoke_entrypoint_exits_non_zero_when_a_check_failed(monkeypatch, ledgerlane_home, capsys):
    failed = {"run_id": "r-smoke-bad", "ok": False, "seconds": 0.1, "postgres": {"round_trip": False},
              "delta": {"version_read": 0, "rows_then": 2, "rows_now": 3},
              "kafka": {"topic": smoke.SMOKE_TOPIC, "messages_found": 0}}
    monkeypatch.setattr(smoke, "run", lambda spark, settings, run_id=None, progress=None: failed)

    code = smoke.JOB.main(["--home", str(ledgerlane_home)])

    assert code == 1 and "smoke FAILED" in capsys.readouterr().out
