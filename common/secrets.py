"""Secrets from AWS Secrets Manager, read once at job start in the driver, into the driver's environment.

The configuration names secrets by ARN only (``postgres.password_secret_arn``, ``kafka.sasl_secret_arn``);
nothing secret is ever an argument, a file or a log line. The driver resolves them here into the
environment variables the code already reads (``postgres.password_env``, ``KAFKA_SASL_*``), so local
runs (which set those variables by hand, or need none) and EMR runs share one path from there on.
Errors name the ARN and what was wrong with the secret, never its value.
"""

from __future__ import annotations

import json
import os

from common.config import Settings
from common.errors import ConfigError, ServiceError

KAFKA_SASL_USERNAME_ENV = "LEDGERLANE_KAFKA_SASL_USERNAME"
KAFKA_SASL_PASSWORD_ENV = "LEDGERLANE_KAFKA_SASL_PASSWORD"
MAX_SECRET_BYTES = 65_536          # Secrets Manager's own limit; a larger value is not one of ours


def secret_arns(settings: Settings) -> list[str]:
    return [arn for arn in (settings.postgres.password_secret_arn, settings.kafka.sasl_secret_arn) if arn]


def publish(settings: Settings, client=None) -> list[str]:
    """Read every configured secret into this process's environment; returns the variables set.

    ``client`` is a boto3 ``secretsmanager`` client (injected in tests); one is made for the region of
    each ARN otherwise. Does nothing (and needs no AWS) when no secret is configured.
    """
    published = []
    if settings.postgres.password_secret_arn:
        value = field(fetch(settings.postgres.password_secret_arn, client), "password",
                      settings.postgres.password_secret_arn, plain_allowed=True)
        os.environ[settings.postgres.password_env] = value
        published.append(settings.postgres.password_env)
    if settings.kafka.sasl_secret_arn:
        raw = fetch(settings.kafka.sasl_secret_arn, client)
        os.environ[KAFKA_SASL_USERNAME_ENV] = field(raw, "username", settings.kafka.sasl_secret_arn)
        os.environ[KAFKA_SASL_PASSWORD_ENV] = field(raw, "password", settings.kafka.sasl_secret_arn)
        published += [KAFKA_SASL_USERNAME_ENV, KAFKA_SASL_PASSWORD_ENV]
    return published


def fetch(arn: str, client=None) -> str:
    """The secret's string value; a binary, missing or unreadable secret is an error naming the ARN."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or _client_for(arn)
    try:
        answer = client.get_secret_value(SecretId=arn)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise ServiceError(f"Secrets Manager refused secret {arn}: {code} (the job role needs "
                           "secretsmanager:GetSecretValue on it, see docs/emr.md)") from None
    except BotoCoreError as exc:
        raise ServiceError(f"could not reach Secrets Manager for secret {arn}: {type(exc).__name__}") from None
    value = answer.get("SecretString")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"secret {arn} has no text value: expected a SecretString, found "
                          f"{'a binary secret' if 'SecretBinary' in answer else 'nothing'}")
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise ConfigError(f"secret {arn} is larger than {MAX_SECRET_BYTES} bytes")
    return value


def field(raw: str, name: str, arn: str, *, plain_allowed: bool = False) -> str:
    """``raw`` is JSON with ``name`` (as RDS and MSK write secrets), or, where allowed, the value itself."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        value = parsed.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"secret {arn} is JSON without a non-empty string field '{name}' "
                              f"(fields found: {', '.join(sorted(parsed)) or 'none'})")
        return value
    if plain_allowed:
        return raw
    raise ConfigError(f"secret {arn} must be JSON with the fields username and password")


def _client_for(arn: str):
    import boto3

    region = arn.split(":")[3]
    return boto3.client("secretsmanager", region_name=region)


# ---- Kafka SASL/SCRAM, from what ``publish`` put in the environment ------------------------------------

SASL_PROTOCOL, SASL_MECHANISM = "SASL_SSL", "SCRAM-SHA-512"


def kafka_credentials() -> tuple[str, str] | None:
    user, password = os.environ.get(KAFKA_SASL_USERNAME_ENV), os.environ.get(KAFKA_SASL_PASSWORD_ENV)
    return (user, password) if user and password else None


def librdkafka_security() -> dict[str, str]:
    """confluent-kafka settings for SASL/SCRAM over TLS, or nothing for a plaintext (local) broker."""
    credentials = kafka_credentials()
    if credentials is None:
        return {}
    return {"security.protocol": SASL_PROTOCOL, "sasl.mechanism": SASL_MECHANISM,
            "sasl.username": credentials[0], "sasl.password": credentials[1]}


def spark_kafka_security() -> dict[str, str]:
    """The same for Spark's Kafka source (``kafka.``-prefixed consumer settings with a JAAS line).

    Spark redacts option values that mention a password in its UI and logs (``spark.redaction.regex``).
    """
    credentials = kafka_credentials()
    if credentials is None:
        return {}
    user, password = (_jaas_quoted(value) for value in credentials)
    return {"kafka.security.protocol": SASL_PROTOCOL, "kafka.sasl.mechanism": SASL_MECHANISM,
            "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
                                      f"username={user} password={password};"}


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
