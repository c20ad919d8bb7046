"""Bounds on what people and feeds hand ledgerlane, and refusals that show a refused value briefly.

A refused value is shown abbreviated with its length, so a 100,000-character argument yields a
one-paragraph message rather than the argument back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from common.errors import ConfigError

SHOWN_CHARS = 40
SHOWN_NAMES = 8
Model = TypeVar("Model", bound=BaseModel)


def shown(value: object) -> str:
    """``repr(value)``, abbreviated: long text becomes its start, an ellipsis and its length."""
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[:SHOWN_CHARS]!r}… ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= 2 * SHOWN_CHARS else f"{text[:2 * SHOWN_CHARS]}…"


def shown_all(values: Iterable[object]) -> str:
    """The first few values, each abbreviated, then how many more there are."""
    values = list(values)
    listed = ", ".join(shown(value) for value in values[:SHOWN_NAMES])
    more = len(values) - SHOWN_NAMES
    return f"[{listed}{f', and {more} more' if more > 0 else ''}]"


def assert_text(name: str, value: str, *, max_chars: int) -> str:
    """Text a PostgreSQL text column can hold within its CHECK: at most ``max_chars``, no NUL."""
    if len(value) > max_chars:
        raise ConfigError(f"{name} is {len(value):,} characters long, at most {max_chars:,} are allowed")
    if "\x00" in value:
        raise ConfigError(f"{name} contains a NUL character at position {value.index(chr(0)) + 1:,}; "
                          "text must not contain NUL (PostgreSQL cannot store it)")
    return value


def build_model(model: type[Model], values: Mapping[str, Any], *, names: Mapping[str, str]) -> Model:
    """``model(**values)``; a ValidationError becomes one ConfigError naming every bad field.

    ``names`` maps a field to what the person typed (``{"note": "--note"}``).
    """
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, names) for error in exc.errors())
        raise ConfigError(f"refused, nothing recorded: {problems}") from None


def _problem(error: Mapping[str, Any], names: Mapping[str, str]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "input"
    reason = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    return f"{names.get(field, field)}: {reason[:1].lower()}{reason[1:]}, found {shown(error['input'])}"
