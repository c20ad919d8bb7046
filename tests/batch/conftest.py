"""Fixtures for the batch-lane tests: settings whose tables and evidence live in a scratch folder."""

from __future__ import annotations

import pytest

from .inputs import scratch_settings


@pytest.fixture
def local(tmp_path):
    return scratch_settings(tmp_path / "lane")[0]


@pytest.fixture
def ctx(local):
    from jobs.batch_context import BatchContext

    return BatchContext.from_settings(local)
