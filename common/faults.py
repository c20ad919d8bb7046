"""Fault injection for tests: ``LEDGERLANE_FAULT=<point>@<batch_id>`` kills the process at that point
(``<point>@*``: the first time the point is reached, in whatever batch).

Fault tests kill a real process between a durable write and Spark's commit, which no mock can do.
Unset in production, where ``crash_if_requested`` is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "LEDGERLANE_FAULT"


def crash_if_requested(point: str, batch_id: int) -> None:
    if os.environ.get(FAULT_ENV) in (f"{point}@{batch_id}", f"{point}@*"):
        os.kill(os.getpid(), signal.SIGKILL)
