"""Declarative checks: small values that say what must hold, evaluated by an engine (GE or native Spark).

``where`` is a Spark SQL predicate choosing the rows a check looks at (e.g. one run's slice); without
it the check covers the whole table version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Kinds whose observation is a count of offending rows (0 passes); the others observe a value in [low, high].
ROW_KINDS = ("not_null", "unique", "between", "in_set", "at_least")
VALUE_KINDS = ("row_count", "sum", "distinct_count")
SCHEMA_KINDS = ("columns", "type")


@dataclass(frozen=True)
class Check:
    kind: str
    columns: tuple[str, ...] = ()
    low: Any = None
    high: Any = None
    values: tuple[Any, ...] = ()
    where: str | None = None
    scope: str = ""

    @property
    def name(self) -> str:
        cols = ", ".join(self.columns)
        scope = f"[{self.scope}]" if self.scope else ""
        if self.kind == "columns":
            return "columns match the contract"
        if self.kind == "type":
            return f"type({cols}) == {self.values[0]}"
        if self.kind == "at_least":
            return f"{self.columns[0]} >= {self.columns[1]}{scope}"
        if self.kind in ROW_KINDS:
            return f"{self.kind}({cols}){_bounds(self)}{scope}"
        target = f"{self.kind}({cols})" if cols else self.kind
        expected = f" == {self.low}" if self.low == self.high else f" in [{self.low}, {self.high}]"
        return f"{target}{scope}{expected}"


def _bounds(check: Check) -> str:
    if check.kind == "between" and check.high is None:
        return f" >= {check.low}"
    if check.kind == "between" and check.low is None:
        return f" <= {check.high}"
    if check.kind == "between":
        return f" in [{check.low}, {check.high}]"
    if check.kind == "in_set":
        return f" in {len(check.values)} values"
    return ""


def columns_are(names: tuple[str, ...]) -> Check:
    return Check("columns", values=tuple(names))


def has_type(column: str, type_name: str) -> Check:
    return Check("type", (column,), values=(type_name,))


def not_null(column: str) -> Check:
    return Check("not_null", (column,))


def unique(*columns: str) -> Check:
    return Check("unique", tuple(columns))


def between(column: str, low: Any = None, high: Any = None) -> Check:
    return Check("between", (column,), low=low, high=high)


def in_set(column: str, values: tuple[Any, ...]) -> Check:
    return Check("in_set", (column,), values=tuple(values))


def at_least(column: str, other: str) -> Check:
    """``column >= other`` on every row where both are present."""
    return Check("at_least", (column, other))


def row_count(expected: int, *, where: str | None = None, scope: str = "") -> Check:
    return Check("row_count", low=expected, high=expected, where=where, scope=scope)


def sum_between(column: str, low: Any, high: Any, *, where: str | None = None, scope: str = "") -> Check:
    return Check("sum", (column,), low=low, high=high, where=where, scope=scope)


def distinct_count(column: str, expected: int, *, where: str | None = None, scope: str = "") -> Check:
    return Check("distinct_count", (column,), low=expected, high=expected, where=where, scope=scope)
