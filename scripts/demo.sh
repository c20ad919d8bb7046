#!/usr/bin/env bash
# Fresh clone -> running demo: set up, start the local services, run the pipeline end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ledgerlane demo "$@"
