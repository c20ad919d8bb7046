"""The README's first command: the end-to-end demo works on embedded defaults, and a second run with
the same seed admits nothing new (idempotent everywhere)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from jobs import demo

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
pytestmark = pytest.mark.slow


def test_demo_twice_with_the_same_seed(spark, settings, services, tmp_path):
    storage = settings.storage.model_copy(update={"tables_root": str(tmp_path / "tables"),
                                                  "checkpoints_root": str(tmp_path / "checkpoints")})
    local = settings.model_copy(update={"storage": storage,
                                        "kafka": settings.kafka.model_copy(update={"topic": "demo-test"})})

    first = demo.run(local, events=400, seed=3, run_id="r-demo-1", now=NOW)
    second = demo.run(local, events=400, seed=3, run_id="r-demo-2", now=NOW)

    assert first["ingest"]["admitted"] == 400 and first["ingest"]["caught_up"]
    assert second["ingest"]["admitted"] == 0
    assert second["ingest"]["duplicates"] == first["ingest"]["admitted"] + first["ingest"]["duplicates"]
    assert first["labels_imported"]["inserted"] == first["simulated"]["fraud_events"]
    assert second["labels_imported"]["inserted"] == 0
    assert second["labels_exported"]["exported"] == 0
    assert {p["verdict"] for p in first["products"].values()} == {"PASS"}
    assert first["products"]["transactions_view"]["rows"] == 400
    assert second["products"] == {}
    assert demo.exit_code(first) == demo.exit_code(second) == 0
    assert demo.exit_code({"products": {"merchant_risk": {"verdict": "ERROR"}}}) == 7
    assert "r-demo-1" in demo.describe(first)
