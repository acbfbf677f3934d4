#!/usr/bin/env bash
# Set up, lint (ruff, the rules in pyproject.toml), type-check (mypy, its [tool.mypy] there), then run the whole
# test suite: the tests not marked slow on both cores (pytest-xdist, 2 processes: they share no state), then the
# slow end-to-end tests (real local Ray, fault injections, Chromium, S3), also two at a time: they spend most of
# their time waiting on processes (13.5 min of wall for 6 min of CPU one at a time), each test has its own Ray, and
# each kills only the processes of its own Ray or program session. Work stealing, as their times differ 100-fold.
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
exec python -m pytest -q -m slow -n 2 --dist worksteal
