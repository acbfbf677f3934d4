"""K-FAC vs SGD with momentum on curves_autoencoder (issues 14 and 15; docs/findings.md has the numbers).

Each optimizer on a small grid, the same steps, batch, data and seeds for all; prints one line per run: the
first evaluated step whose val_loss is below PLATEAU (SGD-momentum's mean-image plateau; "-" if none),
the final train loss (mean of the last 25 mini-batch losses), val_loss and val_recon_error (squared error per
test image) at the end, and the wall time. Usage:

  python scripts/curves_kfac_vs_sgd.py [steps (300)] [seeds, comma-separated (0)] [grids (sgdm,kfac)] [eval step (25)]

Grids: ``sgdm``, ``kfac``, ``kfac2``, ``final_*`` (issue 14's runs), ``kfac_before`` (K-FAC without step control
at issue 14's best damping, lr around its best), ``kfac_sc`` (K-FAC with the papers' step control: sampled
Fisher, quadratic-model rescaling with momentum, Levenberg-Marquardt damping, π; lr 1, grid over the initial
damping), and the ablations ``kfac_sc_empirical`` (the same step control, empirical Fisher) and
``kfac_sampled_only`` (sampled Fisher, fixed lr and damping, no step control).
"""

from __future__ import annotations

import sys
import time

import torch

from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run

torch.set_num_threads(1)  # on shared cores more threads are slower (oversubscription), and bits differ by count
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
SEEDS = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0]
EVAL_EVERY = int(sys.argv[4]) if len(sys.argv) > 4 else 25
WORKLOAD = {"name": "curves_autoencoder", "n_train": 4096, "n_test": 1000, "batch_size": 128}
PLATEAU = 137.0  # val_loss: the mean image gives 137.37 on these test images, tuned SGD-momentum 137.42-137.56


def kfac(lr: float, damping: float, **extra: object) -> dict:
    return {"name": "kfac", "lr": lr, "damping": damping, "momentum": 0.9, "inverse": "cholesky",
            "inverse_interval": 10, **extra}


STEP_CONTROL = {"fisher": "bernoulli", "rescale": True, "adaptive_damping": True, "pi_correction": True}

GRIDS = {
    "sgdm": [{"name": "sgdm", "lr": lr, "momentum": 0.9} for lr in (0.01, 0.03, 0.1)],
    "kfac": [kfac(lr, damping) for damping in (1.0, 10.0) for lr in (0.01, 0.03, 0.1)],
    "kfac2": [kfac(lr, damping) for damping in (0.01, 0.1, 1.0) for lr in (0.1, 0.3, 1.0)],  # kfac's best at an edge
    "final_sgdm": [{"name": "sgdm", "lr": 0.03, "momentum": 0.9}],  # the grids' best, run longer with more seeds
    "final_kfac": [kfac(0.3, 1.0)],
    "kfac_before": [kfac(lr, 1.0) for lr in (0.1, 0.3, 1.0)],
    "kfac_sc": [kfac(1.0, damping, **STEP_CONTROL) for damping in (0.1, 1.0, 10.0)],
    "kfac_sc_empirical": [kfac(1.0, 1.0, **{**STEP_CONTROL, "fisher": "empirical"})],
    "kfac_sampled_only": [kfac(lr, 1.0, fisher="bernoulli") for lr in (0.1, 0.3, 1.0)],
}
GRID = [opt for name in (sys.argv[3] if len(sys.argv) > 3 else "sgdm,kfac").split(",") for opt in GRIDS[name]]


def label(opt: dict) -> str:
    sc = "+step control" if opt.get("rescale") else ""
    fisher = f" fisher={opt['fisher']}" if "fisher" in opt else ""
    return f"{opt['name']}{sc}{fisher} lr={opt['lr']:g} damping={opt.get('damping', '-')!s}"


for opt in GRID:
    for seed in SEEDS:
        t = time.perf_counter()
        res = train_run(WORKLOAD, Policy.from_spec({"type": "single", "optimizer": opt}),
                        {"steps": STEPS, "eval_every": EVAL_EVERY}, seed=seed)
        evals = [r for r in res.steps if r["val_loss"] is not None]
        below = next((r["step"] for r in evals if r["val_loss"] < PLATEAU), "-")
        last = res.steps[-1]
        train = sum(r["loss"] for r in res.steps[-25:]) / len(res.steps[-25:])
        print(f"{label(opt):60s} seed={seed} {res.status:9s} below_plateau_at={below!s:>5} train_loss={train:9.2f} "
              f"val_loss={last['val_loss']:9.2f} recon={last.get('val_recon_error', float('nan')):8.2f} "
              f"wall={time.perf_counter() - t:6.1f}s", flush=True)
