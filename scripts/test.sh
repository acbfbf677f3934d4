#!/usr/bin/env bash
# Set up, lint (ruff, the rules in pyproject.toml), type-check (mypy, its [tool.mypy] there), then run the whole
# test suite (including the slow end-to-end Ray tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check hyperswitch dashboards tests
mypy
exec python -m pytest -q "$@"
