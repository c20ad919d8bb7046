"""Locks held by a running process on a local file: released by the kernel when the process dies,
so a killed runner never leaves a stale lock behind. The holder is written into the file so the
refused process can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType

from common.errors import LockHeld


class FileLock:
    """``with FileLock(path, holder, what=...):`` an exclusive, non-blocking ``flock`` on ``path``."""

    def __init__(self, path: Path, holder: dict, *, what: str) -> None:
        self.path, self.holder, self.what = Path(path), holder, what
        self._fd: int | None = None

    def __enter__(self) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            current = _read_holder(fd)
            os.close(fd)
            raise LockHeld(f"{self.what} is in use by {describe_holder(current)}; "
                           "wait for it to finish or stop it, then retry") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder, sort_keys=True).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}


def describe_holder(holder: dict) -> str:
    if not holder:
        return "another process"
    return f"process {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
