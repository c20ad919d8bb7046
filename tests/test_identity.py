"""The Spark identity columns (ingest's quarantine reasons, decide's fail-closed check) agree with their
Python twins (the API models, the label import) on every kind of value."""

from __future__ import annotations

import re

from pyspark.sql import functions as F

from common.identity import (ID_PATTERN, PLACEHOLDERS, is_placeholder, is_valid_identity, malformed_identity_column,
                             placeholder_column)

VALUES = sorted(PLACEHOLDERS) + [p.upper() for p in PLACEHOLDERS] + [
    # placeholders a separator or case away, and all-zero ids
    "N/A", "n-a", "UN_KNOWN", "Not.Applicable", "0000", "00000000-0000-0000-0000-000000000000", "0:0:0",
    "0_0", "test-1", "Test_Account", "TESTING.x", "placeholder-42", "Dummy:7", " test1", "test 1",
    # real ids, including ones that only look close to a placeholder
    "acc-41-000211", "crd-41-000211-2", "mer-ca-0018", "evt-41-00000000", "a1b", "A.B:C-D_E", "00001",
    "contest-1", "nullable", "x" * 64, "0a0",
    # malformed: too short, too long, bad first character, spaces, control characters, non-ASCII
    "ab", "x" * 65, "-acc-1", "_acc", "acc 1", " acc-1", "acc-1 ", "acc-1\n", "acc\t1", "ácc-1", "acc'1",
    "", "   ", "İd-1",
]


def test_identity_columns_match_the_python_rules(spark):
    frame = spark.createDataFrame([(v,) for v in VALUES] + [(None,)], "v string")
    rows = frame.select("v", placeholder_column(F.col("v")).alias("placeholder"),
                        malformed_identity_column(F.col("v")).alias("malformed")).collect()
    assert len(rows) == len(VALUES) + 1
    for row in rows:
        value = row["v"]
        assert row["placeholder"] is is_placeholder(value), (value, "placeholder")
        assert row["malformed"] is not (value is not None and bool(re.fullmatch(ID_PATTERN, value))), (value, ID_PATTERN)
        assert (row["placeholder"] or row["malformed"]) is not is_valid_identity(value), (value, "identity")
