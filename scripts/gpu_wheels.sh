#!/usr/bin/env bash
# Run HERE (a machine with network and this repository's .venv), before lending scripts/gpu_check.sh a GPU:
# downloads into .whl/ the wheels that the GPU machine's image lacks (/work/.library/device/KINDS.md lists what
# it has: torch, numpy, pandas, pyarrow, scipy, scikit-learn, pyyaml, pillow, aiohttp, grpcio, ...), for its
# Python 3.12 on x86-64 Linux, at the versions installed in .venv (the versions the test suite ran with), and
# prints their total size and what would travel with a device call (the limit is 64 MiB in all).
#
# Ray's wheel alone is ~76 MiB, over the limit, so it is thinned here: ray/jars (the 33 MiB Java worker jar;
# hyperswitch starts no Java workers) and ray/dashboard/client/build (the dashboard's web page; hyperswitch
# starts Ray with include_dashboard=False) are deleted from the wheel and from its RECORD. Nothing else in it
# is touched. Ray goes without its [default] extra (dashboard agent, opencensus, ...): single-worker trials on
# Tune need only ray[tune,train].
#
#   bash scripts/gpu_wheels.sh            # then: the device tool's run with carry [".whl"], command
#                                         #   bash scripts/gpu_check.sh
# .whl/ is listed in .git/info/exclude (never commit wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY=${VENV_PY:-.venv/bin/python}
# Missing from the GPU image, needed by the checks: hyperswitch's own dependencies (optuna, cmaes,
# pytorch-optimizer) and ray[tune,train]'s and optuna's that the image lacks. dash/plotly (the dashboard) are
# not needed by any check and stay behind.
NAMES=(ray optuna cmaes pytorch-optimizer alembic mako sqlalchemy colorlog pydantic pydantic-core annotated-types
       typing-inspection jsonschema jsonschema-specifications referencing rpds-py tensorboardx)

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"

specs=()
for n in "${NAMES[@]}"; do
    v=$("$VENV_PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$n")
    specs+=("$n==$v")
done
rm -rf .whl && mkdir .whl
platforms=()
for p in manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 \
         manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
"$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${specs[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

# Thin Ray's wheel (see above): delete the entries, then drop them from RECORD. zip -d does not recompress.
ray_whl=$(ls .whl/ray-*.whl)
before=$(stat -c %s "$ray_whl")
zip -q -d "$ray_whl" 'ray/jars/*' 'ray/dashboard/client/build/*'
record=$(unzip -Z1 "$ray_whl" | grep -E '^ray-[^/]+\.dist-info/RECORD$')
tmp=$(mktemp -d)
(cd "$tmp" && unzip -q "$OLDPWD/$ray_whl" "$record" \
    && grep -vE '^ray/(jars/|dashboard/client/build/)' "$record" >"$record.new" && mv "$record.new" "$record" \
    && zip -q "$OLDPWD/$ray_whl" "$record")
rm -rf "$tmp"
echo "thinned $(basename "$ray_whl"): $((before / 1048576)) MiB -> $(($(stat -c %s "$ray_whl") / 1048576)) MiB"

whl_bytes=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree_bytes=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
ls -1 .whl
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "wheels: $(ls .whl/*.whl | wc -l) files, $(mib "$whl_bytes") MiB; working tree that travels: $(mib "$tree_bytes") MiB;" \
     "together $(mib $((whl_bytes + tree_bytes))) MiB of the 64 MiB a device call may carry"
if (( whl_bytes + tree_bytes > 64 * 1048576 )); then
    echo "gpu_wheels: over 64 MiB: the device call would be refused; carry fewer wheels" >&2
    exit 1
fi
