"""``transactions_view``: the run's admitted events, typed and enriched, with their Kafka lineage."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (BooleanType, DateType, DecimalType, IntegerType, LongType, StringType, StructField,
                               StructType, TimestampType)

from checks import spec
from checks.spec import Check
from common.catalog import TableSpec
from common.events import CARD_NOT_PRESENT_CHANNELS, CHANNELS, COUNTRIES, CURRENCIES, MAX_AMOUNT_MINOR
from products.model import Inputs, Product
from products.scopes import run_rows

ADMITTED = "bronze.admitted_events"
# ISO 4217 minor units of the contract's currencies: every one has 2 decimals except the yen.
ZERO_DECIMAL_CURRENCIES = ("JPY",)

SCHEMA = StructType([StructField(name, kind) for name, kind in (
    ("event_id", StringType()), ("account_id", StringType()), ("card_id", StringType()),
    ("merchant_id", StringType()), ("merchant_name", StringType()), ("mcc", StringType()),
    ("amount_minor", LongType()), ("currency", StringType()), ("amount", DecimalType(20, 2)),
    ("event_time", TimestampType()), ("event_date", DateType()), ("event_hour", IntegerType()),
    ("channel", StringType()), ("country", StringType()), ("card_present", BooleanType()),
    ("card_not_present", BooleanType()), ("device_id", StringType()), ("ip_address", StringType()),
    ("source_topic", StringType()), ("source_partition", IntegerType()), ("source_offset", LongType()),
    ("admitted_at", TimestampType()), ("run_id", StringType()),
)])


def major_amount(amount_minor: Column, currency: Column) -> Column:
    """Minor units -> major units as an exact decimal (no floating point)."""
    minor = amount_minor.cast("decimal(20,2)")
    return F.when(currency.isin(*ZERO_DECIMAL_CURRENCIES), minor).otherwise(minor / 100).cast("decimal(20,2)")


def transform(inputs: Inputs, _as_of: datetime, run_id: str) -> DataFrame:
    """The run's slice of admitted events, typed and enriched, with its Kafka lineage."""
    return inputs[ADMITTED].where(F.col("run_id") == run_id).select(
        F.col("event_id"), F.col("account_id"), F.col("card_id"), F.col("merchant_id"),
        F.col("merchant_name"), F.col("mcc"), F.col("amount_minor"), F.col("currency"),
        major_amount(F.col("amount_minor"), F.col("currency")).alias("amount"),
        F.col("event_time"), F.col("event_date"), F.hour("event_time").alias("event_hour"),
        F.col("channel"), F.col("country"), F.col("card_present"),
        F.col("channel").isin(*CARD_NOT_PRESENT_CHANNELS).alias("card_not_present"),
        F.col("device_id"), F.col("ip_address"),
        F.col("topic").alias("source_topic"), F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"), F.col("admitted_at"),
        F.lit(run_id).alias("run_id"),
    )


def totals(inputs: Inputs, _as_of: datetime, run_id: str) -> DataFrame:
    """The run's admitted events: rows, amount total, and how many calendar days they span.

    Written independently of ``transform`` on purpose: reusing its filters could not catch a bug in them.
    """
    return inputs[ADMITTED].where(F.col("run_id") == run_id).agg(
        F.count(F.lit(1)).alias("rows"), F.sum("amount_minor").alias("amount_minor"),
        (F.datediff(F.max("event_date"), F.min("event_date")) + 1).alias("days"),
    )


def checks(run_id: str, _as_of: datetime, expected: dict) -> list[Check]:
    where = run_rows(run_id)
    found = [
        *[spec.not_null(col) for col in ("account_id", "card_id", "merchant_id", "event_time", "event_date",
                                          "amount_minor", "currency", "run_id")],
        spec.between("amount_minor", 1, MAX_AMOUNT_MINOR), spec.between("event_hour", 0, 23),
        spec.in_set("currency", CURRENCIES), spec.in_set("channel", CHANNELS), spec.in_set("country", COUNTRIES),
        spec.row_count(expected["rows"], where=where, scope="run"),
    ]
    if expected["rows"]:
        # A calendar day without a single card transaction inside the run's span is a lost partition.
        found += [spec.sum_between("amount_minor", expected["amount_minor"], expected["amount_minor"],
                                   where=where, scope="run"),
                  spec.distinct_count("event_date", expected["days"], where=where, scope="run")]
    return found


PRODUCT = Product(
    name="transactions_view",
    table=TableSpec("silver.transactions_view", "Normalized view of admitted events, one slice per run",
                    partition_by=("event_date",)),
    keys=("event_id",), schema=SCHEMA, transform=transform, totals=totals, checks=checks, sources=(ADMITTED,),
)
