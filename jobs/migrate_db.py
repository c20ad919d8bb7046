"""Apply the human-loop database migrations (one-shot; no Spark needed, runnable wherever jobs run).

    spark-submit jobs/migrate_db.py --run-id r-20250101T000000Z-abc123
    ledgerlane db migrate
"""

from __future__ import annotations

import argparse
import json
import sys

from common.config import load_settings
from common.db import migrate
from common.endpoints import postgres_params
from common.errors import LedgerlaneError
from common.run import assert_run_id, new_run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migrate_db", description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--env", default=None)
    parser.add_argument("--home", default=None)
    args = parser.parse_args(argv)
    try:
        run_id = assert_run_id(args.run_id or new_run_id())
        result = migrate.migrate(postgres_params(load_settings(args.env, home=args.home)), run_id=run_id)
    except LedgerlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps({"run_id": run_id, **result}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
