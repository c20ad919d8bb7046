"""The edge every door shares (CLI, spark-submit): errors to exit codes, progress lines, a quiet console.

Only this module turns exceptions into exit codes and messages. A LedgerlaneError is one paragraph
and its own exit code; anything else is an internal error in one line. Stack traces and Spark's own
log reach a person only with ``--verbose``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

from common.errors import LedgerlaneError

VERBOSE_ENV = "LEDGERLANE_VERBOSE"
INTERRUPTED = 130
MAX_MESSAGE = 600


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def set_verbose(verbose: bool) -> None:
    """Remembered in the environment so a SparkSession built later (and child processes) see it."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"


def first_line(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return (text[:MAX_MESSAGE] + "…") if len(text) > MAX_MESSAGE else text


def guarded(work: Callable[[], int], *, verbose: bool = False) -> int:
    """Run ``work``; return its exit code, or the code of what it raised, with a message on stderr."""
    set_verbose(verbose)
    try:
        return work()
    except LedgerlaneError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"interrupted{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # the last line of defence: one line, the trace only on request
        if verbose:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {first_line(exc) or 'no message'} "
              "(this is a bug in ledgerlane or its environment; rerun with --verbose for the stack trace)",
              file=sys.stderr)
        return 1


def progress_printer(quiet: bool) -> Callable[[str], None]:
    """Progress for multi-step work, on stderr so ``--json`` stdout stays parseable."""

    def show(message: str) -> None:
        if not quiet:
            print(f"  · {message}", file=sys.stderr, flush=True)

    return show
