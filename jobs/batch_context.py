"""What every batch-lane job needs from its surroundings, resolved once in ``main`` and passed down.

Plain values only; the clock is injectable so cut-offs and receipts are testable.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Callable

from common import __version__
from common.config import REPO_ROOT, Settings


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


CODE_VERSION_FILE = "CODE_VERSION"


def code_version(repo: str = str(REPO_ROOT)) -> str:
    """The git commit the code runs from; on EMR, the commit ``ledgerlane emr package`` stamped into the
    code archive (``CODE_VERSION``); the package version where there is neither (a wheel)."""
    stamped = Path(repo) / CODE_VERSION_FILE
    if stamped.is_file():
        return stamped.read_text(encoding="utf-8").strip()
    try:
        done = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return f"git:{done.stdout.strip()}"
    return f"ledgerlane=={__version__}"


@dataclass(frozen=True)
class BatchContext:
    tables_root: str
    evidence_root: str
    config_digest: str
    code_version: str
    clock: Callable[[], datetime] = field(default=utc_now, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> "BatchContext":
        return cls(settings.tables_root, settings.evidence_root, settings.digest(), code_version(), clock)
