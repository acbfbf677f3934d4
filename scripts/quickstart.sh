#!/usr/bin/env bash
# The main job: set up, then run the quickstart sweep (24 real trials on an embedded local Ray).
# Run again to resume it (finished trials are kept; a finished study just prints its best trial).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
if [ -f runs/quickstart/study.json ]; then
  exec hyperswitch sweep search_spaces/quickstart.yaml --resume "$@"
fi
exec hyperswitch sweep search_spaces/quickstart.yaml "$@"
