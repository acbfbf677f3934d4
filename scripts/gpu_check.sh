#!/usr/bin/env bash
# The GPU check (issue 18), one command on a machine with one CUDA GPU, under 8 minutes:
#
#   bash scripts/gpu_check.sh [gpu_check.py options, e.g. --only sweep_gpu1 | --no-sweeps | --budget 300]
#
# 1. Refuses at once, starting nothing, when no GPU is visible (CUDA_VISIBLE_DEVICES empty or -1, no GPU listed
#    by nvidia-smi and no /dev/nvidia0, or a torch that sees no CUDA device).
# 2. Sets up what it needs without network: the machine's own python3 and its CUDA torch (never this project's
#    pinned CPU torch; PYTHON=... picks another interpreter), this repository on PYTHONPATH (no install), and,
#    from the wheels carried in .whl/ (made here by scripts/gpu_wheels.sh), each package that is not already
#    installed at the same version, into /tmp/site (put on PYTHONPATH after the repository).
# 3. Runs scripts/gpu_check.py: one line `CHECK <name>: PASS|FAIL|SKIP ...` per check and a SUMMARY line; exit
#    status 0 only when every required check passed. With $OUT set (the device tool), the whole output is also
#    written to $OUT/gpu_check.log.
#
# The developer's dry run of the same checks on a CPU is `python scripts/gpu_check.py --device cpu --quick`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
t0=$SECONDS
die() { echo "gpu_check: FAIL: $*" >&2; exit 3; }

# -- 1. a GPU, before anything else ----------------------------------------------------------------------------
if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
    case "${CUDA_VISIBLE_DEVICES// /}" in
        "" | "-1" | "none" | "NoDevFiles")
            die "no GPU is visible (CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES}'); this check runs only on a" \
                "machine with a CUDA GPU. Nothing was set up or run." ;;
    esac
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    [[ "$gpus" -ge 1 ]] || die "no GPU is visible: nvidia-smi lists none. Nothing was set up or run."
    nvidia-smi -L
elif [[ ! -e /dev/nvidia0 ]]; then
    die "no GPU is visible: no nvidia-smi and no /dev/nvidia0 on this machine. Nothing was set up or run."
fi

if [[ -n "${OUT:-}" && -d "${OUT}" ]]; then
    exec > >(tee "$OUT/gpu_check.log") 2>&1
fi

PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
"$PY" - <<'EOF' || die "the GPU is not usable from $PY's torch (above); nothing else was run."
import sys
try:
    import torch
except Exception as exc:
    sys.exit(f"gpu_check: {sys.executable} has no torch: {exc}")
if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
    sys.exit(f"gpu_check: torch {torch.__version__} (CUDA build {torch.version.cuda}) at {sys.executable} sees no "
             "CUDA device")
print(f"gpu_check: {sys.executable} (Python {sys.version.split()[0]}), torch {torch.__version__}, "
      f"{torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)")
EOF

# -- 2. set-up ---------------------------------------------------------------------------------------------------
SITE=${GPU_CHECK_SITE:-/tmp/site}
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
setup="repository on PYTHONPATH"
setup_ok=1
shopt -s nullglob
wheels=(.whl/*.whl)
if (( ${#wheels[@]} )); then
    # a wheel is installed unless its distribution is there already at the same version
    mapfile -t todo < <("$PY" - "${wheels[@]}" <<'EOF'
import importlib.metadata as md
import os
import sys
for path in sys.argv[1:]:
    name, version = os.path.basename(path).split("-")[:2]
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have != version:
        print(path)
EOF
    )
    if (( ${#todo[@]} )); then
        mib=$(du -cb "${todo[@]}" | tail -1 | awk '{ printf "%.1f", $1 / 1048576 }')
        echo "gpu_check: installing ${#todo[@]} of ${#wheels[@]} carried wheels ($mib MiB) into $SITE"
        if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
                "${todo[@]}"; then
            setup="$setup; installed ${#todo[@]} of ${#wheels[@]} carried wheels ($mib MiB) into $SITE"
        else
            setup="$setup; pip could not install the carried wheels"
            setup_ok=0
        fi
    else
        setup="$setup; all ${#wheels[@]} carried wheels already installed"
    fi
else
    setup="$setup; no wheels carried in .whl/ (scripts/gpu_wheels.sh makes them)"
fi
ray_line=$("$PY" -c "import ray, optuna; print(f'ray {ray.__version__}, optuna {optuna.__version__}')" 2>/dev/null) \
    || ray_line="ray/optuna not importable: the sweeps cannot run"
echo "CHECK setup: $([[ $setup_ok == 1 ]] && echo PASS || echo FAIL) ($((SECONDS - t0)) s) $setup; $ray_line"

# -- 3. the checks (within 8 minutes in all: the budget leaves time for the set-up and Ray's shutdown) ----------
left=$(( 450 - (SECONDS - t0) ))
timeout --kill-after=15 $((left + 20)) "$PY" -u scripts/gpu_check.py --budget "$left" "$@"
rc=$?
(( rc == 124 || rc == 137 )) && echo "gpu_check: FAIL: stopped after $((SECONDS - t0)) s (time limit)"
echo "gpu_check: done in $((SECONDS - t0)) s, exit status $(( setup_ok ? rc : (rc ? rc : 1) ))"
(( setup_ok )) || exit $(( rc ? rc : 1 ))
exit "$rc"
