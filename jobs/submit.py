"""The one ``spark-submit`` entry point for every job and stream (what EMR Serverless runs).

    spark-submit jobs/submit.py ingest --run-id r-20261122-1 --until-caught-up
    spark-submit jobs/submit.py build account_features --run-id r-20261122-1

The first argument names the job (``jobs/registry.py``); the rest are that job's own options. Each
job module can also be submitted directly (``spark-submit jobs/build.py …``): both doors are the same
declaration.
"""

from __future__ import annotations

import sys

from common.edge import guarded


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        from jobs.registry import JOBS

        print(f"usage: submit.py <job> [options]; jobs: {', '.join(job.name for job in JOBS)}", file=sys.stderr)
        return 2

    def dispatch() -> int:
        from jobs.registry import find

        return find(args[0]).main(args[1:])

    return guarded(dispatch, verbose="--verbose" in args)


if __name__ == "__main__":
    sys.exit(main())
