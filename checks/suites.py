"""Per-product suites: schema contract, keys, value ranges, and reconciliation with the inputs' totals.

Table-wide checks cover the whole certified Delta version (so a bad slice of any run keeps the version
from PASS); reconciliation checks cover the run's own slice against the inputs it was built from.
"""

from __future__ import annotations

from datetime import datetime, timezone

from checks import spec
from checks.spec import Check
from common.events import CHANNELS, COUNTRIES, CURRENCIES, MAX_AMOUNT_MINOR
from common.products import product as find_product
from common.run import assert_run_id

SECONDS_PER_DAY = 86_400
SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "transactions_view": (
        ("event_id", "StringType"), ("account_id", "StringType"), ("card_id", "StringType"),
        ("merchant_id", "StringType"), ("merchant_name", "StringType"), ("mcc", "StringType"),
        ("amount_minor", "LongType"), ("currency", "StringType"), ("amount", "DecimalType"),
        ("event_time", "TimestampType"), ("event_date", "DateType"), ("event_hour", "IntegerType"),
        ("channel", "StringType"), ("country", "StringType"), ("card_present", "BooleanType"),
        ("card_not_present", "BooleanType"), ("device_id", "StringType"), ("ip_address", "StringType"),
        ("source_topic", "StringType"), ("source_partition", "IntegerType"), ("source_offset", "LongType"),
        ("admitted_at", "TimestampType"), ("run_id", "StringType"),
    ),
    "account_features": (
        ("run_id", "StringType"), ("as_of", "TimestampType"), ("account_id", "StringType"),
        ("txn_count_1d", "LongType"), ("txn_count_7d", "LongType"), ("txn_count_30d", "LongType"),
        ("distinct_merchants_30d", "LongType"), ("distinct_countries_30d", "LongType"),
        ("card_not_present_share_30d", "DoubleType"), ("last_event_at", "TimestampType"),
        ("seconds_since_last_event", "LongType"),
    ),
    "merchant_risk": (
        ("run_id", "StringType"), ("as_of", "TimestampType"), ("merchant_id", "StringType"),
        ("window_days", "IntegerType"), ("txn_count", "LongType"), ("labelled_count", "LongType"),
        ("fraud_count", "LongType"), ("legitimate_count", "LongType"), ("suspicious_count", "LongType"),
        ("fraud_rate", "DoubleType"), ("labelled_fraud_rate", "DoubleType"),
        ("last_label_recorded_at", "TimestampType"),
    ),
}


def run_rows(run_id: str) -> str:
    # Safe to inline: assert_run_id admits only letters, digits, '.', '_' and '-'.
    return f"run_id = '{assert_run_id(run_id)}'"


def snapshot_rows(run_id: str, as_of: datetime) -> str:
    """The run's rows stamped with exactly this cut-off (epoch micros: independent of the session time zone)."""
    micros = round(as_of.astimezone(timezone.utc).timestamp() * 1_000_000)
    return f"{run_rows(run_id)} AND as_of = timestamp_micros({micros})"


def schema_checks(name: str) -> list[Check]:
    contract = SCHEMAS[name]
    return [spec.columns_are(tuple(col for col, _ in contract)),
            *[spec.has_type(col, type_name) for col, type_name in contract]]


def key_checks(name: str) -> list[Check]:
    keys = find_product(name).keys
    return [*[spec.not_null(key) for key in keys], spec.unique(*keys)]


def suite(name: str, run_id: str, as_of: datetime, expected: dict) -> list[Check]:
    """Every check of product ``name`` for the run, given its inputs' totals (``checks/reconcile.py``)."""
    builders = {"transactions_view": transactions_view_checks, "account_features": account_features_checks,
                "merchant_risk": merchant_risk_checks}
    return [*schema_checks(name), *key_checks(name), *builders[name](run_id, as_of, expected)]


def transactions_view_checks(run_id: str, as_of: datetime, expected: dict) -> list[Check]:
    where = run_rows(run_id)
    checks = [
        *[spec.not_null(col) for col in ("account_id", "card_id", "merchant_id", "event_time", "event_date",
                                          "amount_minor", "currency", "run_id")],
        spec.between("amount_minor", 1, MAX_AMOUNT_MINOR), spec.between("event_hour", 0, 23),
        spec.in_set("currency", CURRENCIES), spec.in_set("channel", CHANNELS), spec.in_set("country", COUNTRIES),
        spec.row_count(expected["rows"], where=where, scope="run"),
    ]
    if expected["rows"]:
        # A calendar day without a single card transaction inside the run's span is a lost partition.
        checks += [spec.sum_between("amount_minor", expected["amount_minor"], expected["amount_minor"],
                                    where=where, scope="run"),
                   spec.distinct_count("event_date", expected["days"], where=where, scope="run")]
    return checks


def account_features_checks(run_id: str, as_of: datetime, expected: dict) -> list[Check]:
    where = run_rows(run_id)
    checks = [
        spec.not_null("as_of"), spec.between("txn_count_1d", 0, None), spec.between("txn_count_30d", 1, None),
        spec.at_least("txn_count_7d", "txn_count_1d"), spec.at_least("txn_count_30d", "txn_count_7d"),
        spec.between("card_not_present_share_30d", 0, 1), spec.between("seconds_since_last_event", 0, 30 * SECONDS_PER_DAY),
        spec.at_least("as_of", "last_event_at"),
        spec.row_count(expected["subjects"], where=snapshot_rows(run_id, as_of), scope="run at cut-off"),
    ]
    if expected["events"]:
        checks.append(spec.sum_between("txn_count_30d", expected["events"], expected["events"], where=where, scope="run"))
    return checks


def merchant_risk_checks(run_id: str, as_of: datetime, expected: dict) -> list[Check]:
    where = run_rows(run_id)
    checks = [
        spec.not_null("as_of"), spec.between("txn_count", 1, None),
        spec.at_least("txn_count", "labelled_count"), spec.at_least("labelled_count", "fraud_count"),
        spec.between("fraud_rate", 0, 1), spec.between("labelled_fraud_rate", 0, 1),
        # Point in time: no row may use a label recorded after its own cut-off.
        spec.at_least("as_of", "last_label_recorded_at"),
        spec.row_count(expected["subjects"], where=snapshot_rows(run_id, as_of), scope="run at cut-off"),
    ]
    if expected["events"]:
        checks += [
            spec.sum_between("txn_count", expected["events"], expected["events"], where=where, scope="run"),
            spec.sum_between("labelled_count", 0, expected["labelled"], where=where, scope="run"),
            spec.sum_between("fraud_count", 0, expected["fraud"], where=where, scope="run"),
        ]
    return checks
