#!/usr/bin/env bash
# Fresh clone -> test results: set up, then run the suite against real local Kafka and PostgreSQL
# (the fixtures start and stop them under a scratch home).
set -euo pipefail
cd "$(dirname "$0")/.."
LEDGERLANE_WITH_BROWSER=1 bash scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit $status
