#!/usr/bin/env bash
# Set up everything the test suite needs and run all of it: lint, types, tests. This is what CI runs.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k bundle`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check mirrorctl tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
