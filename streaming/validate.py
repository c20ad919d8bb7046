"""Parse and validate raw Kafka records against the event contract, as pure DataFrame functions.

Every record gets ``reasons`` (all failing checks, in ``QUARANTINE_REASONS`` order) and ``reason``
(the first one, null for a valid event). No Python UDFs: every check is a Spark expression.

The payload is parsed once, into a Variant (Spark's binary JSON), which keeps every value's JSON
type. A valid event's type signature (``schema_of_variant``) is one of a few known strings, so
only records with another signature pay for the field-by-field diagnosis of unknown, missing and
wrong-typed fields. That shortcut never changes a verdict: the diagnosis alone decides the same.
"""

from __future__ import annotations

from itertools import product

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DataType, LongType, StringType

from common import events
from common.identity import malformed_identity_column, placeholder_column

TEXT_FIELDS = ("merchant_name", "device_id", "ip_address")
SOURCE_COLUMNS = ("topic", "partition", "offset", "kafka_timestamp", "key")
OPTIONAL_FIELDS = tuple(name for name in events.ALL_FIELDS if name not in events.REQUIRED_FIELDS)
# The name schema_of_variant gives each JSON type the contract uses, and the SQL type it is read as.
JSON_TYPES: dict[type[DataType], tuple[str, str]] = {
    StringType: ("STRING", "string"), LongType: ("BIGINT", "bigint"), BooleanType: ("BOOLEAN", "boolean")}
FIELD_TYPES = {f.name: JSON_TYPES[type(f.dataType)] for f in events.wire_schema().fields}
JSON_NULL = "VOID"


def valid_signatures() -> tuple[str, ...]:
    """Every ``schema_of_variant`` string a valid event can have: each required field with its JSON
    type, each optional field absent, null or typed (keys in the sorted order Spark prints them)."""
    required = [(name, FIELD_TYPES[name][0]) for name in events.REQUIRED_FIELDS]
    optional = [[[], [(name, JSON_NULL)], [(name, FIELD_TYPES[name][0])]] for name in OPTIONAL_FIELDS]
    signatures = []
    for chosen in product(*optional):
        entries = sorted(required + [entry for entries in chosen for entry in entries])
        signatures.append("OBJECT<" + ", ".join(f"{name}: {json_type}" for name, json_type in entries) + ">")
    return tuple(signatures)


VALID_SIGNATURES = valid_signatures()


def parse_records(raw: DataFrame) -> DataFrame:
    """Kafka source rows -> source coordinates, payload text, the parsed JSON and its type signature."""
    text = F.col("value").cast("string")
    return raw.select(
        "topic", "partition", "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key").cast("string").alias("key"),
        F.col("value"),
        text.alias("payload"),
        F.sha2(F.coalesce(F.col("value"), F.lit(b"")), 256).alias("payload_sha256"),
        # Strict JSON, null when the text is not: no single quotes, NaN, leading zeros or duplicate keys.
        F.try_parse_json(text).alias("_json"),
    ).withColumn("_signature", F.schema_of_variant("_json"))


def _usual_shape() -> Column:
    """True when the keys and JSON types are exactly a valid event's: no field needs a closer look."""
    return F.coalesce(F.col("_signature").isin(*VALID_SIGNATURES), F.lit(False))


def _json_type(field: str) -> Column:
    """The JSON type of one top-level value (``STRING``, ``BIGINT``, ``VOID`` for null); null if absent."""
    return F.schema_of_variant(F.variant_get(F.col("_json"), f"$.{field}", "variant"))


def _has_type(field: str) -> Column:
    return F.coalesce(_json_type(field) == F.lit(FIELD_TYPES[field][0]), F.lit(False))


def _typed(field: str) -> Column:
    """The field's value, only when its JSON type is the contract's (a number is never an id)."""
    value = F.try_variant_get(F.col("_json"), f"$.{field}", FIELD_TYPES[field][1])
    return F.when(F.col("_usual"), value).when(_has_type(field), value)


def _unusual(condition: Column) -> Column:
    """A field-by-field check, evaluated only for records outside the usual shapes (a CASE is lazy;
    an AND would let common-subexpression elimination compute it for every record)."""
    return F.when(~F.col("_usual"), condition)


def _any(conditions: list[Column]) -> Column:
    result = F.lit(False)
    for condition in conditions:
        result = result | F.coalesce(condition, F.lit(False))
    return result


def _missing(field: str) -> Column:
    return F.coalesce(_json_type(field), F.lit(JSON_NULL)) == F.lit(JSON_NULL)


def _wrong_type(field: str) -> Column:
    return ~_missing(field) & ~_has_type(field)


def _unknown_keys() -> Column:
    return F.array_except(F.json_object_keys("payload"), F.array(*map(F.lit, events.ALL_FIELDS)))


def _exactly_one_json_value() -> Column:
    """Nothing but whitespace follows the first JSON value (the JSON parsers stop after it).

    Wrapped in [ ], the array holds one element only if the first character after the value closes
    it; but a ']' in the payload closes it too, and the parser ignores what follows. Wrapped as the
    value of a key in { }, the same character must close the object or continue it. No character does
    both, so the two wrappings together leave the payload's end as the only way through.
    """
    payload = F.col("payload")
    as_element = F.json_array_length(F.concat(F.lit("["), payload, F.lit("]")))
    as_member = F.json_object_keys(F.concat(F.lit('{"v":'), payload, F.lit("}")))
    return F.coalesce((as_element == 1) & as_member.isNotNull(), F.lit(False))


def outside_broker_window(ts: Column, broker_ts: Column) -> Column:
    """An event time further from the broker's timestamp than the contract allows."""
    age_s, lead_s = int(events.MAX_EVENT_AGE.total_seconds()), int(events.MAX_EVENT_LEAD.total_seconds())
    return (ts < broker_ts - F.expr(f"INTERVAL {age_s} SECONDS")) | (ts > broker_ts + F.expr(f"INTERVAL {lead_s} SECONDS"))


def event_dates(validated: DataFrame) -> DataFrame:
    """The distinct UTC dates of the valid events: where their duplicates can be in the history."""
    return validated.where(F.col("reason").isNull()).select(F.to_date("event_time").alias("d")).distinct()


def checks() -> list[tuple[str, Column]]:
    """(reason, failing condition) in the contract's order, over the typed columns of ``Validator``."""
    col = F.col
    identity = [col(f) for f in events.IDENTITY_FIELDS]
    return [
        ("oversized_payload", F.octet_length("value") > events.MAX_PAYLOAD_BYTES),
        ("invalid_json", col("value").isNull() | ~F.is_valid_utf8("value") | col("_json").isNull()
         | ~col("_signature").startswith("OBJECT<") | ~_exactly_one_json_value()),
        ("unknown_field", _unusual(F.size(_unknown_keys()) > 0)),
        ("missing_field", _unusual(_any([_missing(f) for f in events.REQUIRED_FIELDS]))),
        ("wrong_type", _unusual(_any([_wrong_type(f) for f in events.ALL_FIELDS]))),
        ("unsupported_schema_version", col("schema_version") != F.lit(events.SCHEMA_VERSION)),
        ("placeholder_identity", _any([placeholder_column(c) for c in identity])),
        ("invalid_identity", _any([malformed_identity_column(c) for c in identity])),
        ("control_characters", _any([col(f).rlike(r"[\x00-\x1f\x7f]") for f in TEXT_FIELDS])),
        ("invalid_amount", (col("amount_minor") <= 0) | (col("amount_minor") > events.MAX_AMOUNT_MINOR)),
        ("unknown_currency", ~col("currency").isin(*events.CURRENCIES)),
        ("unknown_country", ~col("country").isin(*events.COUNTRIES)),
        ("invalid_mcc", ~col("mcc").rlike(r"^[0-9]{4}$")),
        ("invalid_channel", ~col("channel").isin(*events.CHANNELS)),
        ("invalid_event_time", col("event_time").isNull() | ~col("_event_time_text").rlike(r"(Z|[+-][0-9]{2}:[0-9]{2})$")
         | outside_broker_window(col("event_time"), col("kafka_timestamp"))),
        ("invalid_text", (F.length("merchant_name") < 1) | (F.length("merchant_name") > events.MAX_TEXT_LENGTH)
         | (F.length("ip_address") > 45)),
        ("key_mismatch", col("key").isNull() | (col("key") != col("account_id"))),
    ]


class Validator:
    """Raw Kafka rows -> source columns, payload, typed event fields, ``reasons`` and ``reason``.

    The two select lists are built once: ~1,000 column expressions over py4j take about a second,
    which a streaming query would otherwise pay again on every batch.
    """

    def __init__(self) -> None:
        kept = [*SOURCE_COLUMNS, "value", "payload", "payload_sha256"]
        fields = [F.try_to_timestamp(_typed(f)).alias(f) if f == "event_time" else _typed(f).alias(f)
                  for f in events.ALL_FIELDS]
        self.typed = [*kept, "_json", "_signature", "_usual", *fields, _typed("event_time").alias("_event_time_text")]
        # concat, not array_compact or filter: their lambda is interpreted, and would drag every check
        # out of generated code with it.
        no_reason = F.array().cast("array<string>")
        reasons = F.concat(*[F.when(F.coalesce(cond, F.lit(False)), F.array(F.lit(name))).otherwise(no_reason)
                             for name, cond in checks()])
        self.checked = [*kept, *events.ALL_FIELDS, reasons.alias("reasons")]

    def __call__(self, raw: DataFrame) -> DataFrame:
        parsed = parse_records(raw).withColumn("_usual", _usual_shape())
        return parsed.select(*self.typed).select(*self.checked).withColumn("reason", F.get("reasons", 0))


def parse_and_validate(raw: DataFrame) -> DataFrame:
    return Validator()(raw)
