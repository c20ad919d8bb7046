"""Where ledgerlane keeps its local state: tables, checkpoints, services, logs, caches."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "LEDGERLANE_HOME"
CACHE_ENV = "LEDGERLANE_CACHE"
DEFAULT_HOME_NAME = ".ledgerlane"


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--home DIR``, else ``$LEDGERLANE_HOME``, else ``.ledgerlane/`` in the working directory."""
    raw = explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME_NAME
    return Path(raw).expanduser().resolve()


def resolve_cache(home: Path) -> Path:
    """Downloaded jars and Maven/Ivy caches; shared across homes when ``$LEDGERLANE_CACHE`` is set."""
    raw = os.environ.get(CACHE_ENV)
    return Path(raw).expanduser().resolve() if raw else home / "cache"
