"""Connections to the human-loop database: the application role by default, errors without secrets.

Application code runs as ``ledgerlane_app`` (NOLOGIN, least privilege): the login role named in the
connection parameters switches to it at connect time through the ``role`` startup option, so a
statement can never run with the login role's wider rights by accident. Migrations connect as the
login role itself (``as_app=False``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from common.errors import ServiceError

APP_ROLE = "ledgerlane_app"
SCHEMA = "human_loop"


def describe_endpoint(params: dict[str, Any]) -> str:
    """``user@host:port/db``: enough to find the database, never the password."""
    return f"{params.get('user', '?')}@{params.get('host', '?')}:{params.get('port', '?')}/{params.get('dbname', '?')}"


def redact(text: str, params: dict[str, Any]) -> str:
    """Drop the password from ``text`` wherever a driver or server might have echoed it."""
    secret = params.get("password")
    return text.replace(secret, "***") if isinstance(secret, str) and secret else text


def unreachable(params: dict[str, Any], exc: BaseException) -> ServiceError:
    """A ServiceError that says which database failed and why, with the password redacted."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ServiceError(
        f"PostgreSQL {describe_endpoint(params)} could not serve the request: {redact(detail, params)}. "
        "Committed data is unaffected; check `ledgerlane services status` and retry."
    )


def connection_kwargs(params: dict[str, Any], *, as_app: bool, application_name: str) -> dict[str, Any]:
    kwargs = {**params, "application_name": application_name}
    if as_app:
        kwargs["options"] = f"-c role={APP_ROLE}"
    return kwargs


@contextmanager
def connect(
    params: dict[str, Any], *, as_app: bool = True, autocommit: bool = False, application_name: str = "ledgerlane"
) -> Iterator[psycopg.Connection]:
    """One transaction (commit on success, rollback on error); a lost server becomes a ServiceError."""
    try:
        with psycopg.connect(
            **connection_kwargs(params, as_app=as_app, application_name=application_name), autocommit=autocommit
        ) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise unreachable(params, exc) from None
