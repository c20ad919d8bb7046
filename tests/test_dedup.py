"""Pure dedup classification on small inline rows: retries, conflicts, history, first-wins order."""

from __future__ import annotations

from chispa import assert_df_equality

from streaming.dedup import classify

VALIDATED = "event_id string, partition int, offset long, payload_sha256 string, reason string, reasons array<string>"
HISTORY = "event_id string, payload_sha256 string"
EXPECTED = "event_id string, partition int, offset long, outcome string, reason string, duplicate_of string"


def test_first_record_wins_retries_are_duplicates_conflicts_are_quarantined(spark):
    validated = spark.createDataFrame([
        ("evt-a", 0, 10, "sha-a", None, []),
        ("evt-a", 1, 3, "sha-a", None, []),           # a retry on another partition
        ("evt-a", 0, 11, "sha-a2", None, []),         # same id, other payload
        ("evt-b", 0, 12, "sha-b", None, []),          # already admitted before: a retry of history
        ("evt-c", 0, 13, "sha-c9", None, []),         # conflicts with history
        ("bad", 0, 14, "sha-x", "invalid_json", ["invalid_json"]),
    ], VALIDATED)
    history = spark.createDataFrame([("evt-b", "sha-b"), ("evt-c", "sha-c")], HISTORY)

    actual = classify(validated, history).select("event_id", "partition", "offset", "outcome", "reason", "duplicate_of")

    expected = spark.createDataFrame([
        ("evt-a", 0, 10, "admitted", None, None),
        ("evt-a", 1, 3, "duplicate", None, "batch"),
        ("evt-a", 0, 11, "quarantined", "conflicting_duplicate", "batch"),
        ("evt-b", 0, 12, "duplicate", None, "history"),
        ("evt-c", 0, 13, "quarantined", "conflicting_duplicate", "history"),
        ("bad", 0, 14, "quarantined", "invalid_json", None),
    ], EXPECTED)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
