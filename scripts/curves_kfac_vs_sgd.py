"""K-FAC vs SGD with momentum on curves_autoencoder (issue 14's check; docs/findings.md has the numbers).

Each optimizer's lr (and K-FAC's damping) on a small grid, the same steps, batch, data and seeds for all;
prints one line per run: final train loss (last batch), val_loss and val_recon_error (squared error per
test image). Usage: python scripts/curves_kfac_vs_sgd.py [steps (300)] [seeds, comma-separated (0)] [grids (sgdm,kfac)]
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
WORKLOAD = {"name": "curves_autoencoder", "n_train": 4096, "n_test": 1000, "batch_size": 128}

def kfac(lr: float, damping: float) -> dict:
    return {"name": "kfac", "lr": lr, "damping": damping, "momentum": 0.9, "inverse": "cholesky",
            "inverse_interval": 10}


GRIDS = {
    "sgdm": [{"name": "sgdm", "lr": lr, "momentum": 0.9} for lr in (0.01, 0.03, 0.1)],
    "kfac": [kfac(lr, damping) for damping in (1.0, 10.0) for lr in (0.01, 0.03, 0.1)],
    "kfac2": [kfac(lr, damping) for damping in (0.01, 0.1, 1.0) for lr in (0.1, 0.3, 1.0)],  # kfac's best at an edge
    "final_sgdm": [{"name": "sgdm", "lr": 0.03, "momentum": 0.9}],  # the grids' best, run longer with more seeds
    "final_kfac": [kfac(0.3, 1.0)],
}
GRID = [opt for name in (sys.argv[3] if len(sys.argv) > 3 else "sgdm,kfac").split(",") for opt in GRIDS[name]]

for opt in GRID:
    for seed in SEEDS:
        t = time.perf_counter()
        res = train_run(WORKLOAD, Policy.from_spec({"type": "single", "optimizer": opt}),
                        {"steps": STEPS, "eval_every": 10**6}, seed=seed)
        last = res.steps[-1]
        print(f"{opt['name']:5s} lr={opt['lr']:<6g} damping={opt.get('damping', '-')!s:5s} seed={seed} "
              f"{res.status:9s} train_loss={res.summary['train_loss']:9.2f} val_loss={last['val_loss']:9.2f} "
              f"recon={last.get('val_recon_error', float('nan')):8.2f} wall={time.perf_counter() - t:6.1f}s",
              flush=True)
