"""Small hand-made inputs for the batch lane: admitted events and label events as Delta tables."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from common import catalog, delta
from common.config import Settings, load_settings

CUTOFF = datetime(2026, 11, 4, tzinfo=timezone.utc)
DAY1 = datetime(2026, 11, 1, 10, tzinfo=timezone.utc)


def admitted_row(n: int, run_id: str, *, account: str | None = "acct-1", merchant: str = "m-1",
                 amount: int = 1000, at: datetime = DAY1, currency: str = "EUR", channel: str = "ecommerce") -> dict:
    return {
        "schema_version": 1, "event_id": f"evt-{n:04d}", "account_id": account, "card_id": "card-1",
        "merchant_id": merchant, "merchant_name": f"Merchant {merchant}", "mcc": "5411", "amount_minor": amount,
        "currency": currency, "event_time": at, "channel": channel, "country": "DE",
        "card_present": channel not in ("ecommerce", "moto"), "device_id": None, "ip_address": None,
        "event_date": at.date(), "topic": "ledgerlane.transactions", "partition": n % 3, "offset": n,
        "kafka_timestamp": at, "payload_sha256": f"sha-{n}", "run_id": run_id, "app_id": "app-1",
        "batch_id": 0, "admitted_at": at + timedelta(seconds=5),
    }


def good_events(run_id: str, start: int = 1) -> list[dict]:
    """Six events over three consecutive days, two accounts, two merchants."""
    plan = [("acct-1", "m-1", 0), ("acct-1", "m-2", 0), ("acct-2", "m-1", 1),
            ("acct-1", "m-1", 2), ("acct-2", "m-2", 2), ("acct-2", "m-2", 2)]
    return [admitted_row(start + i, run_id, account=acct, merchant=merchant, amount=1000 + i,
                         at=DAY1 + timedelta(days=day, minutes=i))
            for i, (acct, merchant, day) in enumerate(plan)]


def write_admitted(spark: SparkSession, tables_root: str, rows: list[dict], run_id: str = "r-inputs") -> None:
    from jobs.build import admitted_schema

    frame = spark.createDataFrame(rows, admitted_schema())
    delta.append(frame, catalog.location(tables_root, "bronze.admitted_events"), "bronze.admitted_events", run_id)


def label_row(n: int, event_id: str | None, label: str, recorded_at: datetime, *, account: str = "acct-1",
              corrects: int | None = None) -> dict:
    return {"label_event_id": n, "idempotency_key": f"key-{n}", "account_id": account, "event_id": event_id,
            "label": label, "source": "analyst", "actor": "analyst-1", "observed_at": recorded_at,
            "recorded_at": recorded_at, "corrects_label_event_id": corrects, "note": "",
            "source_instance": "db-1", "export_run_id": "r-export"}


def labels_frame(spark: SparkSession, rows: list[dict]) -> DataFrame:
    from jobs.build import labels_schema

    return spark.createDataFrame(rows, labels_schema())


def write_labels(spark: SparkSession, tables_root: str, rows: list[dict]) -> None:
    delta.append(labels_frame(spark, rows), catalog.location(tables_root, "labels.label_events"),
                 "labels.label_events", "r-export")


CONFIG = """\
[storage]
tables_root = "{root}/tables"
evidence_root = "{root}/evidence"
checkpoints_root = "{root}/checkpoints"

[spark]
shuffle_partitions = 2
"""


def scratch_settings(root: Path) -> tuple[Settings, Path]:
    """Settings (and the config file behind them, for CLI tests) rooted at ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "batch.toml"
    config.write_text(CONFIG.format(root=root), encoding="utf-8")
    return load_settings(path=config, home=root), config
