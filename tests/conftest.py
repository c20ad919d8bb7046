"""Session-wide fixtures: one SparkSession, one set of real local services, one scratch home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import make_home

REPO_ROOT = Path(__file__).resolve().parent.parent
# Jars (Ivy, Maven) are shared across test homes so only the first run ever downloads them.
os.environ.setdefault("LEDGERLANE_CACHE", str(REPO_ROOT / ".ledgerlane" / "cache"))


@pytest.fixture(scope="session")
def ledgerlane_home():
    home = make_home("ledgerlane-test-")
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(ledgerlane_home):
    from common.config import load_settings

    return load_settings("local", home=ledgerlane_home, overrides={"spark": {"shuffle_partitions": 2}})


@pytest.fixture(scope="session")
def spark(settings):
    from common.spark import build_session

    session = build_session(settings, "ledgerlane-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def services(settings):
    from services import manager

    statuses = manager.up(settings.home, settings.cache)
    yield statuses
    manager.down(settings.home)


@pytest.fixture(scope="session")
def kafka_bootstrap(services, settings):
    from common.endpoints import kafka_bootstrap as resolve

    return resolve(settings)


@pytest.fixture(scope="session")
def pg_params(services, settings):
    from common.endpoints import postgres_params

    return postgres_params(settings)


@pytest.fixture(scope="session")
def new_database(pg_params):
    """A factory of empty databases in the session's PostgreSQL (dropped at the end of the session)."""
    import secrets

    from helpers import create_database, drop_database

    made: list[str] = []

    def make() -> dict:
        name = f"ll_test_{secrets.token_hex(4)}"
        made.append(name)
        return create_database(pg_params, name)

    yield make
    for name in made:
        drop_database(pg_params, name)


@pytest.fixture(autouse=True)
def no_kafka_credentials_leak():
    """A test that publishes Kafka SASL credentials must take them back: they switch every later client to SASL."""
    from common.secrets import KAFKA_SASL_PASSWORD_ENV, KAFKA_SASL_USERNAME_ENV

    yield
    leaked = [name for name in (KAFKA_SASL_USERNAME_ENV, KAFKA_SASL_PASSWORD_ENV) if name in os.environ]
    assert not leaked, f"the test left {leaked} in the environment"
