"""The card-transaction event contract: one pydantic model; the Spark schema is derived from it.

Bump ``SCHEMA_VERSION`` on any change of fields or rules; the ingest lane quarantines versions it
does not know.
"""

from __future__ import annotations

import re

from datetime import datetime, timedelta, timezone
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pyspark.sql.types import (
    BooleanType,
    DataType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from common.errors import IdentityError
from common.identity import assert_identity

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 4096
MAX_AMOUNT_MINOR = 5_000_000_00          # 5 million in major units: above this is absurd for a card
MAX_TEXT_LENGTH = 120
# Event time is judged against the broker's timestamp of the record, so a replay decides the same.
MAX_EVENT_LEAD = timedelta(hours=1)
MAX_EVENT_AGE = timedelta(days=400)

CURRENCIES = ("AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "HKD", "INR", "JPY", "MXN", "NOK",
              "NZD", "PLN", "SEK", "SGD", "USD", "ZAR")
COUNTRIES = ("AT", "AU", "BE", "BR", "CA", "CH", "CN", "DE", "DK", "ES", "FI", "FR", "GB", "HK", "IE", "IN",
             "IT", "JP", "MX", "NG", "NL", "NO", "NZ", "PL", "PT", "RO", "RU", "SE", "SG", "US", "ZA")
Channel = Literal["card_present", "contactless", "ecommerce", "atm", "moto"]
CHANNELS: tuple[str, ...] = get_args(Channel)
CARD_NOT_PRESENT_CHANNELS = ("ecommerce", "moto")   # no card at the terminal: online and mail/phone order
IDENTITY_FIELDS = ("event_id", "account_id", "card_id", "merchant_id")


class CardTransaction(BaseModel):
    """One card authorisation as the bus carries it (JSON, keyed by ``account_id``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    schema_version: int = Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)
    event_id: str
    account_id: str
    card_id: str
    merchant_id: str
    merchant_name: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)
    mcc: str = Field(pattern=r"^[0-9]{4}$")
    amount_minor: int = Field(gt=0, le=MAX_AMOUNT_MINOR)
    currency: str
    event_time: datetime
    channel: Channel
    country: str
    card_present: bool
    device_id: str | None = None
    ip_address: str | None = Field(default=None, max_length=45)

    @field_validator(*IDENTITY_FIELDS)
    @classmethod
    def _explicit_identity(cls, value: str, info) -> str:
        # ValueError, so pydantic reports every bad field in one ValidationError.
        try:
            return assert_identity(info.field_name, value)
        except IdentityError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("merchant_name", "device_id", "ip_address")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("control characters are not allowed")
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"unknown currency {value!r}")
        return value

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value not in COUNTRIES:
            raise ValueError(f"unknown country {value!r}")
        return value

    @field_validator("event_time", mode="before")
    @classmethod
    def _aware_time(cls, value):
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("event_time must be an ISO-8601 timestamp with a UTC offset")
        return value

    def to_json(self) -> str:
        """The wire form: compact JSON, event_time in UTC with a 'Z' suffix."""
        payload = self.model_dump(mode="json")
        payload["event_time"] = self.event_time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return CardTransaction.model_json_dumps(payload)

    @staticmethod
    def model_json_dumps(payload: dict) -> str:
        import json

        return json.dumps(payload, separators=(",", ":"), sort_keys=True)


_SPARK_TYPES: dict[type, DataType] = {str: StringType(), int: LongType(), bool: BooleanType(), datetime: TimestampType()}


def _spark_type(annotation) -> DataType:
    if get_origin(annotation) is Literal:
        return StringType()
    args = [a for a in get_args(annotation) if a is not type(None)]
    return _SPARK_TYPES[args[0] if args else annotation]


def spark_schema() -> StructType:
    """The typed Spark schema of an admitted event, derived field by field from ``CardTransaction``."""
    return StructType([
        StructField(name, _spark_type(field.annotation), nullable=not field.is_required())
        for name, field in CardTransaction.model_fields.items()
    ])


def wire_schema() -> StructType:
    """How the JSON is parsed: event_time stays a string so its format is checked explicitly."""
    return StructType([
        StructField(f.name, StringType() if f.name == "event_time" else f.dataType, True) for f in spark_schema().fields
    ])


REQUIRED_FIELDS = tuple(name for name, field in CardTransaction.model_fields.items() if field.is_required())
ALL_FIELDS = tuple(CardTransaction.model_fields)

# Why an event was quarantined. Checks run in this order and the first that fails is the row's
# ``reason``; every failing check is kept in ``reasons``.
QUARANTINE_REASONS = (
    "oversized_payload",          # value larger than MAX_PAYLOAD_BYTES
    "invalid_json",               # null value, not UTF-8 JSON, or not a JSON object
    "unknown_field",              # a key the contract does not define
    "missing_field",              # a required key absent or null
    "wrong_type",                 # present but not of the contract's JSON type
    "unsupported_schema_version",
    "placeholder_identity",       # an identity field is empty/unknown/n/a/0…0/test/placeholder…
    "invalid_identity",           # an identity field does not match ID_PATTERN (quotes, spaces, SQL…)
    "control_characters",         # a text field holds control characters
    "invalid_amount",             # amount_minor <= 0 or > MAX_AMOUNT_MINOR
    "unknown_currency",
    "unknown_country",
    "invalid_mcc",
    "invalid_channel",
    "invalid_event_time",         # unparseable, or outside [broker time - MAX_EVENT_AGE, + MAX_EVENT_LEAD]
    "invalid_text",               # merchant_name empty/too long, ip_address too long
    "key_mismatch",               # the Kafka record key is not the event's account_id
    "conflicting_duplicate",      # event_id already seen with a different payload
)
