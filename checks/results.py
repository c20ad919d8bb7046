"""The checker's own result types: what the gate, the receipts and the evidence rely on (never GE objects)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PASS = "PASS"
FAIL = "FAIL"


def plain(value: Any) -> Any:
    """A JSON-friendly observed value: integral floats and decimals become ints, tuples become lists."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


@dataclass(frozen=True)
class CheckResult:
    expectation: str
    passed: bool
    observed: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"expectation": self.expectation, "passed": self.passed, "observed": plain(self.observed)}

    def describe(self) -> str:
        return f"{self.expectation}: observed {plain(self.observed)!r}"


@dataclass(frozen=True)
class Verdict:
    """All results of one certification of (product, Delta version)."""

    product: str
    run_id: str
    version: int
    engine: str
    results: tuple[CheckResult, ...]

    @property
    def status(self) -> str:
        # No results proves nothing: an empty suite is a FAIL, never a PASS.
        return PASS if self.results and all(r.passed for r in self.results) else FAIL

    @property
    def failures(self) -> list[str]:
        return [r.describe() for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"product": self.product, "run_id": self.run_id, "version": self.version, "engine": self.engine,
                "status": self.status, "failures": self.failures, "results": [r.to_dict() for r in self.results]}
