"""Fixtures for the batch-lane tests: settings whose tables and evidence live in a scratch folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Settings, load_settings

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


@pytest.fixture
def local(tmp_path) -> Settings:
    return scratch_settings(tmp_path / "lane")[0]


@pytest.fixture
def ctx(local):
    from jobs.batch_context import BatchContext

    return BatchContext.from_settings(local)
