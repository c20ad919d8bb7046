#!/usr/bin/env bash
# Idempotent setup for a fresh clone: system packages (JDK 17, Maven, PostgreSQL) when missing,
# the Python environment at .venv/, and the project installed in editable mode with its dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
# The tests read the HTML evidence report in a real headless browser (Debian's chromium).
if [[ "${LEDGERLANE_WITH_BROWSER:-0}" == 1 ]]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "missing system packages: ${need_apt[*]} — install them (as root: apt-get install ${need_apt[*]}) and rerun"
    exit 3
  fi
  say "installing system packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
if [[ -z "$java_major" || "$java_major" -lt 17 ]]; then
  say "Java 17 or newer is required (found: ${java_major:-none}); set JAVA_HOME to a JDK 17"
  exit 3
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  say "Python 3.11 is required (EMR Serverless emr-spark-8.1.0 runs 3.11); found $("$PY" --version 2>&1)"
  exit 3
fi

stamp=.venv/.ledgerlane-installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -x .venv/bin/python || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  say "creating .venv and installing ledgerlane[dev] (first time takes a few minutes)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
say "ready: $(.venv/bin/python --version), $(.venv/bin/python -c 'import pyspark, delta; print("pyspark", pyspark.__version__)')"
