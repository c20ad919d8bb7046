"""Fixtures for the human-loop tests: scratch databases in the session's real PostgreSQL cluster.

Each scratch database is created, migrated and dropped here, so these tests never depend on (or
disturb) the ``ledgerlane`` database other lanes use. Configured-endpoint settings read the admin
password from an environment variable, as production does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import PASSWORD_ENV


@pytest.fixture(scope="session")
def hl_db(new_database) -> dict:
    """Admin params of one migrated scratch database shared by the module's tests."""
    from human_loop import migrate

    params = new_database()
    migrate.migrate(params, run_id="r-hl-fixture")
    return params


@pytest.fixture(scope="session")
def write_config(hl_db, tmp_path_factory) -> Callable[..., Path]:
    """A conf file pointing at a scratch database, password from $LEDGERLANE_TEST_HL_PG_PASSWORD."""
    import os

    os.environ[PASSWORD_ENV] = hl_db["password"]

    def write(params: dict | None = None, *, tables_root: str = "") -> Path:
        params = params or hl_db
        folder = tmp_path_factory.mktemp("hl-conf")
        path = folder / "hl.toml"
        path.write_text(
            f'env = "hltest"\n[storage]\ntables_root = "{tables_root}"\n'
            f'[spark]\nshuffle_partitions = 2\n'
            f'[postgres]\nhost = "{params["host"]}"\nport = {params["port"]}\ndatabase = "{params["dbname"]}"\n'
            f'user = "{params["user"]}"\npassword_env = "{PASSWORD_ENV}"\n',
            encoding="utf-8",
        )
        return path

    return write


@pytest.fixture(scope="session")
def hl_settings_for(write_config, ledgerlane_home) -> Callable[..., object]:
    """Settings for the scratch database (and a Delta tables root), the way a deployment configures them."""
    from common.config import load_settings

    def build(params: dict | None = None, *, tables_root: str = ""):
        return load_settings(path=write_config(params, tables_root=tables_root), home=ledgerlane_home)

    return build


@pytest.fixture(scope="session")
def hl_run(write_config, ledgerlane_home) -> Callable[..., tuple[int, str, str]]:
    """``hl_run(capsys, *args)``: ``ledgerlane --config <scratch database> args`` in this process."""
    from helpers import cli_invoker

    return cli_invoker(write_config(), ledgerlane_home)


@pytest.fixture
def hl_unchanged(hl_db) -> Iterator[None]:
    """Asserts, after the test, that no human-loop table of the shared scratch database gained or lost a row."""
    from helpers import human_loop_counts

    before = human_loop_counts(hl_db)
    yield
    assert human_loop_counts(hl_db) == before
