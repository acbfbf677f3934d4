#!/usr/bin/env bash
# Set up, lint (ruff, the rules in pyproject.toml), type-check (mypy, its [tool.mypy] there), then run the whole
# test suite: the tests not marked slow on both cores (pytest-xdist, 2 processes: they share no state), then the
# slow end-to-end tests (real local Ray, fault injections, Chromium) one at a time, as their timings assume, except
# the catalogue's smoke sweeps (two at a time).
# With arguments, one plain pytest run of those (e.g. scripts/test.sh tests/optim -k gen).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check hyperswitch dashboards tests
mypy
if [ "$#" -gt 0 ]; then
    exec python -m pytest -q "$@"
fi
python -m pytest -q -m "not slow" -n 2
# The catalogue's smoke sweeps (one 12-step trial per space file, each its own Tune run on that process's own
# local Ray) are mostly process starts and imports on one core: two at a time. The other slow tests (faults,
# clusters, Chromium, S3) one at a time.
python -m pytest -q -m slow -n 2 tests/search/test_catalogue.py
exec python -m pytest -q -m slow --ignore=tests/search/test_catalogue.py
