#!/usr/bin/env bash
# Set up ./.venv with everything hyperswitch and its tests need. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.hyperswitch-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  echo "setup: installing packages into .venv (first run: 1-3 minutes)"
  python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  # PyTorch first: 2.13.0 is the CPU build on machines that carry it; elsewhere pip picks the default build
  # (CUDA on Linux). The project's range (torch>=2.3) then keeps whatever is installed.
  if ! python -c "import torch" 2>/dev/null; then
    python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  fi
  python -m pip install -q -e ".[test]" 2>&1 | grep -v "is ignored" || true
  python -c "import hyperswitch, torch, ray, optuna, pyarrow, dash" || { echo "setup: install failed" >&2; exit 1; }
  touch "$stamp"
fi
# Headless Chromium for the dashboard's browser tests (Playwright drives Debian's build; never `playwright
# install`). Checked on every run; installed once.
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "setup: installing Debian chromium and chromium-driver (dashboard browser tests; ~1 minute)"
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: warning: /usr/bin/chromium is missing and cannot be installed here (needs apt-get as root);" \
      "the dashboard's browser tests will fail" >&2
  fi
fi
