"""A small ablation-like study written through the real results store: ``variant`` (first_order, mixer,
no_corrector; the variant sets ``T1``) x ``task`` (digits_mlp, digits_cnn) x seeds. Shared by the comparison,
report and dashboard tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hyperswitch.results.cache import clear_cache
from hyperswitch.results.store import StudyStore

NAN = math.nan
# final validation accuracy per variant and seed (digits_cnn: + 0.01); no_corrector's seed 1 diverged
ACC = {"first_order": [0.90, 0.92, 0.94, 0.96], "mixer": [0.93, 0.94, 0.97, 0.98],
       "no_corrector": [0.95, NAN, 0.91, 0.99, 0.90]}
T1 = {"first_order": 0, "mixer": 10, "no_corrector": 0}


def write_arms_study(storage: Path, name: str = "arms", tasks: tuple[str, ...] = ("digits_mlp", "digits_cnn"),
                     running: bool = True) -> Path:
    store = StudyStore(storage / name)
    store.root.mkdir(parents=True)
    n = sum(len(v) for v in ACC.values()) * len(tasks)
    store.write_meta({"name": name, "metric": "val_accuracy", "mode": "max",
                      "parameter_names": ["task", "variant", "T1"], "sampled_names": ["task", "variant"],
                      "status": "running" if running else "completed", "n_trials_total": n + running,
                      "summary": {"algorithm": "grid", "samples": 3 * len(tasks), "seeds": [0, 1, 2, 3, 4],
                                  "workload": "digits", "policy_type": "mixer"}})
    k = 0
    for ti, task in enumerate(tasks):
        for variant, values in ACC.items():
            for seed, acc in enumerate(values):
                diverged = math.isnan(acc)
                last = 3 if diverged else 8
                steps = [{"step": s, "epoch": 1 + (s - 1) // 4, "loss": 2.0 / s if not (diverged and s == 3) else NAN,
                          "val_accuracy": acc + 0.01 * ti if s % 4 == 0 else None, "lr": 0.05,
                          "optimizer": "kfac" if s < 4 else "sgdm", "elapsed_s": 0.01 * s, "memory_bytes": 100}
                         for s in range(1, last + 1)]
                events = [{"step": 3, "kind": "diverged", "detail": json.dumps({"loss": "nan"})}] if diverged else \
                    [{"step": 4, "kind": "switch", "detail": json.dumps({"from": "kfac", "to": "sgdm"})}]
                cfg = f"c{ti}{list(ACC).index(variant)}"
                row = {"trial_id": f"{cfg}-s{seed}", "config_id": cfg, "seed": seed,
                       "status": "diverged" if diverged else "completed", "workload": task, "policy_type": "mixer",
                       "optimizers": "kfac,sgdm", "task": task, "variant": variant, "T1": T1[variant],
                       "val_accuracy": NAN if diverged else acc + 0.01 * ti, "switch_step": None if diverged else 4,
                       "peak_memory_bytes": 2**20, "wall_time_s": 1.0 + k % 3,
                       "time_to_target_s": None if diverged else 0.5 + seed}
                store.write_trial_parts(row, steps, events)
                k += 1
    if running:
        store.write_trial_parts({"trial_id": "c01-s9", "config_id": "c01", "seed": 9, "status": "running",
                                 "workload": tasks[0], "policy_type": "mixer", "optimizers": "kfac,sgdm",
                                 "task": tasks[0], "variant": "mixer", "T1": 10}, [], [])
    clear_cache()
    return store.root
