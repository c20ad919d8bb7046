"""Run identity: every job, query, receipt and Delta commit carries a run id."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")


def new_run_id(now: datetime | None = None, token: str | None = None) -> str:
    """``r-YYYYmmddTHHMMSSZ-xxxxxx``: sortable by start time, unique by a random suffix."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"r-{moment:%Y%m%dT%H%M%SZ}-{token or secrets.token_hex(3)}"


def assert_run_id(run_id: str) -> str:
    from common.errors import ConfigError

    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise ConfigError(
            f"run id {run_id!r} is invalid: expected 3-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run_id
