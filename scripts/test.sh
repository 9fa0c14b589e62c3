#!/usr/bin/env bash
# Set up everything the test suite needs and run all of it: lint, types, tests. This is what CI runs.
# It installs and starts the real services the live tests need (PostgreSQL, Pulp 3, devpi-server; see
# docs/services.md) and stops them afterwards if it started them. Extra arguments go to pytest, e.g.
# `bash scripts/test.sh -k bundle`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== services"
bash scripts/services.sh install
if ! bash scripts/services.sh status >/dev/null 2>&1; then
  trap 'bash scripts/services.sh stop || true' EXIT
  bash scripts/services.sh start   # exits non-zero, with log tails, if any service fails to start
fi

echo "== ruff"; .venv/bin/ruff check mirrorctl tests bench scripts/services/svctool.py
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
