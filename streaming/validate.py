"""Parse and validate raw Kafka records against the event contract, as pure DataFrame functions.

Every record gets ``reasons`` (all failing checks, in ``QUARANTINE_REASONS`` order) and ``reason``
(the first one, null for a valid event). No Python UDFs: every check is a Spark expression.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from common import events
from common.identity import malformed_identity_column, placeholder_column

# Strict JSON: Spark's defaults would accept single quotes and NaN, which our producers never send.
JSON_OPTIONS = {"allowSingleQuotes": "false", "allowNonNumericNumbers": "false", "mode": "PERMISSIVE"}
STRING_FIELDS = tuple(f.name for f in events.wire_schema().fields if isinstance(f.dataType, StringType))
TEXT_FIELDS = ("merchant_name", "device_id", "ip_address")
SOURCE_COLUMNS = ("topic", "partition", "offset", "kafka_timestamp", "key")


def parse_records(raw: DataFrame) -> DataFrame:
    """Kafka source rows -> source coordinates, payload text, the raw key/value map and the typed struct."""
    text = F.col("value").cast("string")
    return raw.select(
        "topic", "partition", "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("string").alias("key"),
        F.col("value"),
        text.alias("payload"),
        F.sha2(F.coalesce(F.col("value"), F.lit(b"")), 256).alias("payload_sha256"),
        F.from_json(text, MapType(StringType(), StringType()), JSON_OPTIONS).alias("_raw"),
        F.from_json(text, events.wire_schema(), JSON_OPTIONS).alias("_typed"),
        # Keys whose value is a JSON string: one regex pass instead of one per string field.
        F.regexp_extract_all(text, F.lit(r'"([A-Za-z0-9_]+)"\s*:\s*"'), 1).alias("_quoted_keys"),
    )


def _raw(field: str) -> Column:
    return F.element_at(F.col("_raw"), F.lit(field))


def _typed(field: str) -> Column:
    return F.col("_typed").getField(field)


def _any(conditions: list[Column]) -> Column:
    result = F.lit(False)
    for condition in conditions:
        result = result | F.coalesce(condition, F.lit(False))
    return result


def _quoted(field: str) -> Column:
    """A string field must be a JSON string: Spark would otherwise turn 12 or {...} into text."""
    return F.array_contains(F.col("_quoted_keys"), field)


def _wrong_type(field: str, is_string: bool) -> Column:
    present = _raw(field).isNotNull()
    return present & (~_quoted(field) if is_string else _typed(field).isNull())


def _exactly_one_json_value() -> Column:
    """Spark's parser stops after the first object; wrapped in [ ], trailing text breaks the array."""
    wrapped = F.json_array_length(F.concat(F.lit("["), F.col("payload"), F.lit("]")))
    return F.coalesce(wrapped == 1, F.lit(False))


def _event_time() -> Column:
    return F.try_to_timestamp(_typed("event_time"))


def outside_broker_window(ts: Column, broker_ts: Column) -> Column:
    """An event time further from the broker's timestamp than the contract allows."""
    age_s, lead_s = int(events.MAX_EVENT_AGE.total_seconds()), int(events.MAX_EVENT_LEAD.total_seconds())
    return (ts < broker_ts - F.expr(f"INTERVAL {age_s} SECONDS")) | (ts > broker_ts + F.expr(f"INTERVAL {lead_s} SECONDS"))


def event_dates(raw: DataFrame) -> DataFrame:
    """The distinct UTC dates of the raw records' event times that validation could accept.

    Same text, parser and broker window as the checks, none of the other checks: a superset of the
    valid events' dates, so history selected by it can only be wider than needed, never narrower.
    """
    ts = F.try_to_timestamp(F.get_json_object(F.col("value").cast("string"), "$.event_time"))
    return (raw.select(ts.alias("ts"), F.col("timestamp").alias("broker_ts"))
               .where(F.col("ts").isNotNull() & ~outside_broker_window(F.col("ts"), F.col("broker_ts")))
               .select(F.to_date("ts").alias("d")).distinct())


def checks() -> list[tuple[str, Column]]:
    """(reason, failing condition) in the contract's order; each is a Spark boolean expression."""
    identity = [_typed(f) for f in events.IDENTITY_FIELDS]
    ts = _event_time()
    return [
        ("oversized_payload", F.octet_length("value") > events.MAX_PAYLOAD_BYTES),
        ("invalid_json", F.col("value").isNull() | ~F.is_valid_utf8("value") | F.col("_raw").isNull()
         | ~_exactly_one_json_value()),
        ("unknown_field", F.size(F.array_except(F.map_keys("_raw"), F.array(*map(F.lit, events.ALL_FIELDS)))) > 0),
        ("missing_field", _any([_raw(f).isNull() for f in events.REQUIRED_FIELDS])),
        ("wrong_type", _any([_wrong_type(f, f in STRING_FIELDS) for f in events.ALL_FIELDS])),
        ("unsupported_schema_version", _typed("schema_version") != F.lit(events.SCHEMA_VERSION)),
        ("placeholder_identity", _any([placeholder_column(c) for c in identity])),
        ("invalid_identity", _any([malformed_identity_column(c) for c in identity])),
        ("control_characters", _any([_typed(f).rlike(r"[\x00-\x1f\x7f]") for f in TEXT_FIELDS])),
        ("invalid_amount", (_typed("amount_minor") <= 0) | (_typed("amount_minor") > events.MAX_AMOUNT_MINOR)),
        ("unknown_currency", ~_typed("currency").isin(*events.CURRENCIES)),
        ("unknown_country", ~_typed("country").isin(*events.COUNTRIES)),
        ("invalid_mcc", ~_typed("mcc").rlike(r"^[0-9]{4}$")),
        ("invalid_channel", ~_typed("channel").isin(*events.CHANNELS)),
        ("invalid_event_time", ts.isNull() | ~_typed("event_time").rlike(r"(Z|[+-][0-9]{2}:[0-9]{2})$")
         | outside_broker_window(ts, F.col("kafka_timestamp"))),
        ("invalid_text", (F.length(_typed("merchant_name")) < 1)
         | (F.length(_typed("merchant_name")) > events.MAX_TEXT_LENGTH)
         | (F.length(_typed("ip_address")) > 45)),
        ("key_mismatch", F.col("key").isNull() | (F.col("key") != _typed("account_id"))),
    ]


def validate(parsed: DataFrame) -> DataFrame:
    """Adds ``reasons`` and ``reason``; the typed event fields become top-level columns."""
    flagged = F.array(*[F.when(F.coalesce(cond, F.lit(False)), F.lit(name)) for name, cond in checks()])
    reasons = F.array_compact(flagged)  # not F.filter: a lambda would disable code generation
    event_cols = [
        (_event_time() if name == "event_time" else _typed(name)).alias(name) for name in events.ALL_FIELDS
    ]
    return parsed.select(
        *SOURCE_COLUMNS, "value", "payload", "payload_sha256", *event_cols,
        reasons.alias("reasons"),
    ).withColumn("reason", F.get(F.col("reasons"), 0))


def parse_and_validate(raw: DataFrame) -> DataFrame:
    return validate(parse_records(raw))


