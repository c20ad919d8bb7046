"""Explicit identity: subject keys must be real identifiers, never placeholders. Ambiguity fails closed.

One rule set, used three ways: by pydantic models (raise), by Spark (a Column), and mirrored by the
PostgreSQL CHECK constraints in the human-loop migrations.
"""

from __future__ import annotations

import re

from pyspark.sql import Column
from pyspark.sql import functions as F

from common.bounds import shown
from common.errors import IdentityError

# Letters, digits and a few separators; 3..64 characters. Rules out whitespace, quotes, control
# characters and anything that looks like SQL. Matched whole-string: ``$`` would accept a final "\n".
ID_CHARS = r"[A-Za-z0-9][A-Za-z0-9_.:-]{2,63}"
ID_PATTERN = rf"^{ID_CHARS}$"
_ID_RE = re.compile(ID_CHARS)
JAVA_ID_PATTERN = rf"^{ID_CHARS}\z"

PLACEHOLDERS = frozenset({
    "", "unknown", "unk", "null", "none", "nil", "n/a", "na", "n.a.", "undefined", "test", "testing",
    "placeholder", "dummy", "sample", "example", "default", "tbd", "todo", "xxx", "anonymous", "guest",
    "missing", "empty", "nan", "-", "?", "0",
})
# Normalised form: lower case, separators dropped, so "N/A", "n-a" and "UN_KNOWN" are caught alike.
_PLACEHOLDER_KEYS = frozenset(re.sub(r"[^a-z0-9]", "", p) for p in PLACEHOLDERS)


def _normalise(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.strip().lower())


def is_placeholder(value: object) -> bool:
    """True for missing, empty, placeholder words, and all-zero ids (``0000``, ``00000000-0000-...``)."""
    if value is None or not isinstance(value, str):
        return True
    key = _normalise(value)
    return key in _PLACEHOLDER_KEYS or set(key) <= {"0"} or key.startswith(("test", "placeholder", "dummy"))


def is_valid_identity(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_RE.fullmatch(value)) and not is_placeholder(value)


def assert_identity(field: str, value: object) -> str:
    """Raise IdentityError naming the field and showing the refused value."""
    if is_placeholder(value):
        raise IdentityError(f"{field} must be an explicit identifier, found placeholder {shown(value)}")
    if not _ID_RE.fullmatch(value):
        raise IdentityError(f"{field} must match {ID_PATTERN} (3 to 64 characters), found {shown(value)}")
    return value


def placeholder_column(col: Column) -> Column:
    """Spark twin of ``is_placeholder``: true when the (string) column holds no real identity."""
    key = F.regexp_replace(F.lower(F.trim(col)), "[^a-z0-9]", "")
    return (
        col.isNull()
        | key.isin(*sorted(_PLACEHOLDER_KEYS))
        | key.rlike("^0*$")
        | key.startswith("test")
        | key.startswith("placeholder")
        | key.startswith("dummy")
    )


def malformed_identity_column(col: Column) -> Column:
    """True when the string does not match ``ID_PATTERN`` (checked after placeholders)."""
    return ~F.coalesce(col.rlike(JAVA_ID_PATTERN), F.lit(False))
