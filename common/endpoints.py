"""Where the bus and the database are: configured endpoints, else the local services of this home."""

from __future__ import annotations

from common import local_services
from common.config import Settings, secret_from_env
from common.errors import ConfigError


def kafka_bootstrap(settings: Settings) -> str:
    if settings.kafka.bootstrap_servers:
        return settings.kafka.bootstrap_servers
    return local_services.kafka_bootstrap(settings.home)


def postgres_params(settings: Settings, *, admin: bool = False) -> dict:
    """psycopg connection keywords. Local defaults come from the local cluster's 0600 credentials file."""
    pg = settings.postgres
    if not pg.host:
        params = local_services.postgres_admin_params(settings.home)
        params["connect_timeout"] = pg.connect_timeout_s
        return params
    if not pg.user:
        raise ConfigError("postgres.user must be set when postgres.host is set")
    return {
        "host": pg.host,
        "port": pg.port or 5432,
        "dbname": pg.database,
        "user": pg.user,
        "password": secret_from_env(pg.password_env, what="the PostgreSQL password"),
        "connect_timeout": pg.connect_timeout_s,
    }
