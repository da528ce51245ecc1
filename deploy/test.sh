#!/usr/bin/env bash
# The test command of the README and of CI: set up, run the tests, then the static checks
# (ruff, mypy --strict, generated-code drift and buf lint). Long soaks are behind the
# `soak` marker and run with the benchmarks, not here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
.venv/bin/python -m pytest -q --durations=15
.venv/bin/ruff check cdp sim bench tests
.venv/bin/ruff format --check cdp sim bench tests
.venv/bin/mypy
.venv/bin/lint-imports
bash deploy/protos-check.sh
