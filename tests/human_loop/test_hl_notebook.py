"""notebooks/labels_as_of.ipynb runs end to end against label events this test creates and exports."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from common import catalog
from human_loop import labels, migrate
from human_loop.connection import connect
from jobs import export_labels

from helpers import unique

# Set to a file name to look at the plot the notebook drew (a person's check, not an assertion).
FIGURE_OUT = __import__("os").environ.get("LABELS_NB_FIGURE_OUT")
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "labels_as_of.ipynb"


def add(params: dict, account: str, label: str, observed_days_ago: int) -> None:
    with connect(params) as conn:
        labels.add_label(conn, labels.LabelEventIn(
            idempotency_key=unique("k"), account_id=account, label=label, source="chargeback", actor="feed-1",
            observed_at=datetime.now(timezone.utc) - timedelta(days=observed_days_ago)))


def cell_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.fixture
def exported_labels(spark, new_database, hl_settings_for, tmp_path):
    """Two export runs with labels recorded before each, and one label recorded after the last."""
    params = new_database()
    migrate.migrate(params)
    settings = hl_settings_for(params, tables_root=str(tmp_path / "tables"))
    add(params, "acct-nb-1", "fraud", 30)
    add(params, "acct-nb-2", "suspicious", 3)
    export_labels.export(spark, settings, "r-nb-1")
    time.sleep(0.05)
    add(params, "acct-nb-2", "fraud", 2)
    add(params, "acct-nb-3", "fraud", 1)
    export_labels.export(spark, settings, "r-nb-2")
    return catalog.location(settings.tables_root, "labels.label_events")


@pytest.mark.slow
def test_notebook_executes_and_shows_agreement_lag_and_plot(exported_labels, ledgerlane_home, tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGERLANE_HOME", str(ledgerlane_home))
    monkeypatch.setenv("LABELS_DELTA_PATH", exported_labels)
    monkeypatch.setenv("LABELS_NB_MASTER", "local[1]")
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    NotebookClient(notebook, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = "\n".join(cell_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "versionAsOf and timestampAsOf agree on every commit: True" in text
    assert "version 0: 2 label events" in text and "version 1: 4 label events" in text
    assert "time travel and recorded_at agree at every commit: True" in text
    assert "they differ at 4 of 6 instants" in text  # at each label's own recorded_at, before its export
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
    if FIGURE_OUT:
        import base64

        Path(FIGURE_OUT).write_bytes(base64.b64decode(images[0]["data"]["image/png"]))
