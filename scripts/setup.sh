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
logs=.venv/setup-logs
mkdir -p "$logs"

# quiet NAME COMMAND...: run COMMAND with its output in $logs/NAME.log. On success print nothing but the log's
# ERROR lines (pip reports a dependency conflict as an ERROR and exits 0); on failure print the whole log and
# stop. What this hides on success is build chatter (setuptools' "Editable installation" BuildBackendWarning,
# apt's "debconf: delaying package configuration, since apt-utils is not installed"), kept in the log.
quiet() {
  local log="$logs/$1.log"
  shift
  if "$@" >"$log" 2>&1; then
    grep '^ERROR' "$log" >&2 || true
  else
    local rc=$?
    echo "setup: failed (exit $rc): $*" >&2
    # (less pip's notes on index locations this machine's pip.conf names but does not have)
    grep -v "^WARNING: Location '.*' is ignored: it is neither a file nor a directory" "$log" | sed 's/^/  /' >&2 || true
    echo "setup: (log: $log)" >&2
    exit "$rc"
  fi
}

stamp=.venv/.hyperswitch-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  echo "setup: installing packages into .venv (first run: 1-3 minutes)"
  quiet pip-upgrade python -m pip install -q --upgrade pip
  # PyTorch first: 2.13.0 is the CPU build on machines that carry it; elsewhere pip picks the default build
  # (CUDA on Linux). The project's range (torch>=2.3) then keeps whatever is installed.
  if ! python -c "import torch" 2>/dev/null; then
    quiet pip-torch python -m pip install -q "torch==2.13.0"
  fi
  quiet pip-hyperswitch python -m pip install -q -e ".[test]"
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
    # (env: sudo's env_reset would drop a plain DEBIAN_FRONTEND=... prefix)
    quiet apt-update $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    quiet apt-chromium $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  else
    echo "setup: warning: /usr/bin/chromium is missing and cannot be installed here (needs apt-get as root);" \
      "the dashboard's browser tests will fail" >&2
  fi
fi
