"""What every ``spark-submit`` entrypoint shares: the common flags and the error-to-exit-code edge."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from common.config import Settings, load_settings
from common.errors import LedgerlaneError


def job_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser with ``--env``, ``--config``, ``--home`` and ``--json``; the job adds its own arguments."""
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").strip().splitlines()[0] if doc else None)
    parser.add_argument("--env", default=None, help="configuration environment: conf/<env>.toml")
    parser.add_argument("--config", default=None, help="configuration file instead of conf/<env>.toml")
    parser.add_argument("--home", default=None, help="state folder (default: $LEDGERLANE_HOME or ./.ledgerlane)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def run_job(args: argparse.Namespace, work: Callable[[Settings], dict], describe: Callable[[dict], str],
            exit_code: Callable[[dict], int] = lambda _summary: 0) -> int:
    """Load settings, do the work, print the summary; a LedgerlaneError becomes its exit code.

    ``exit_code`` maps a finished summary to the code (e.g. a FAIL verdict is not a crash, but not 0 either).
    """
    try:
        summary = work(load_settings(args.env, path=args.config, home=args.home))
    except LedgerlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(summary, indent=2, sort_keys=True, default=str) if args.json else describe(summary))
    return exit_code(summary)
