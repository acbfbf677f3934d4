"""Platform overhead and concurrency, measured side by side in one run (not a test).

Overhead: the same tiny trials (digits_mlp, 32 hidden units, 50 steps, 2 evaluations, one lr each) run
(a) as a plain loop of ``train_run`` in this process, (b) through ``run_sweep`` with ``workers: 1`` (a Tune
trial process trains in-process, checkpoints at every evaluation), (c) with ``workers: 2`` (a group of 2
gloo workers kept alive across the trials: ``hyperswitch.train.group``). One trial at a time, so per-trial
overhead = (sweep wall time - loop wall time) / trials. Ray's own start is timed apart and not counted.

Concurrency: 8 equal, longer trials with ``max_concurrent`` 1 vs 2 (``workers: 1``); efficiency =
T(1) / (2 T(2)) (1.0 = perfect use of 2 slots). ``--concurrency-workers 2``: the same with 2-worker trials.

Real sweep (``--mixer N``): the first N configurations of ``search_spaces/mixer_thresholds.yaml``'s grid x its 3
seeds (``--mixer-seeds``), 2 at a time as the space says, then each of those trials' training loop again in this
process, plain (``train_run``, no reports, no part files), one at a time. Per-trial time outside training =
(sweep wall x concurrency - sum of the training loops) / trials.

    python bench/bench_platform.py                   # 20 trials for (a), (b), (c)
    python bench/bench_platform.py --trials 6 --skip-concurrency
    python bench/bench_platform.py --only-mixer --mixer 70      # the whole 210-trial grid
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

SPACE = """\
name: {name}
workload: {{name: digits_mlp, batch_size: 64, hidden: 32}}
policy: {{type: single, optimizer: {{name: sgdm, lr: $lr}}}}
train: {{steps: {steps}, eval_every: {every}{ckpt}}}
parameters:
  lr: {{type: float, low: 0.01, high: 0.1, log: true}}
search: {{algorithm: random, samples: {trials}, seed: 0}}
seeds: 1
resources: {{workers: {workers}, cpus_per_worker: {cpus}}}
max_concurrent: {concurrent}
"""


def space(name: str, trials: int, workers: int, concurrent: int = 1, steps: int = 50, every: int = 25,
          checkpoint: bool = True):
    from hyperswitch.search.space import space_from_text

    text = SPACE.format(name=name, trials=trials, workers=workers, concurrent=concurrent, steps=steps, every=every,
                        cpus=1 if workers == 1 else 0.49, ckpt="" if checkpoint else ", checkpoint_every: 0")
    return space_from_text(text, f"{name}.yaml")


def sweep_time(sp, storage: Path, **options) -> tuple[float, int]:
    from hyperswitch.search.runner import run_sweep

    t0 = time.perf_counter()
    study = run_sweep(sp, storage=storage, out=lambda s: None, **options)
    return time.perf_counter() - t0, len(study.finished())


def mixer_sweep(storage: Path, samples: int, seeds: int) -> None:
    """A real sweep on mixer_thresholds' grid: per-trial time outside the training loop."""
    from hyperswitch.search.space import load_space
    from hyperswitch.switching import Policy
    from hyperswitch.train.loop import train_run

    root = Path(__file__).resolve().parents[1]
    sp = load_space(root / "search_spaces" / "mixer_thresholds.yaml").with_overrides(samples=samples, seeds=seeds)
    t, done = sweep_time(sp, storage, samples=samples, seeds=seeds)
    from hyperswitch.results import open_study

    trials = open_study(storage / sp.name).trials
    conc = sp.max_concurrent
    t0 = time.perf_counter()
    for _, row in trials.iterrows():
        values = sp.resolve({n: row[n].item() if hasattr(row[n], "item") else row[n] for n in sp.sampled_names})
        workload, policy = sp.instantiate(values)
        train_run(workload, Policy.from_spec(policy), sp.train, int(row["seed"]))
    loops = time.perf_counter() - t0
    walls = float(trials["wall_time_s"].sum())
    per = (t * conc - loops) / done
    print(f"(m) mixer_thresholds grid, {samples} configurations x {seeds} seeds: {done} trials, {conc} at a time; "
          f"sweep wall {t:.1f} s; sum of plain training loops {loops:.1f} s ({loops / done:.2f} s a trial); sum of "
          f"trial wall_time_s {walls:.1f} s; outside training (wall x {conc} - loops) / trials = {per:.2f} s per "
          f"trial")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--skip-concurrency", action="store_true")
    ap.add_argument("--skip-multi", action="store_true", help="skip (c), the 2-worker trials")
    ap.add_argument("--concurrency-workers", type=int, default=1, choices=(1, 2),
                    help="workers per trial in the concurrency measurement")
    ap.add_argument("--mixer", type=int, default=10, metavar="N",
                    help="configurations of mixer_thresholds' grid for the real-sweep measurement (0: skip)")
    ap.add_argument("--mixer-seeds", type=int, default=3)
    ap.add_argument("--only-mixer", action="store_true", help="only the real-sweep measurement")
    args = ap.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    from hyperswitch._ray import connect
    from hyperswitch.switching import Policy
    from hyperswitch.train.loop import train_run

    n = args.trials
    sp = space("plain", n, 1)
    lrs = [0.01 * (10 ** (i / max(1, n - 1))) for i in range(n)]
    train_run(sp.workload, Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": 0.05}}),
              sp.train, 0)  # warm-up: imports, data set load
    t0 = time.perf_counter()
    for i, lr in enumerate(lrs):
        train_run(sp.workload, Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": lr}}),
                  sp.train, i)
    t_loop = time.perf_counter() - t0
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)")
    print(f"(a) plain loop: {n} trials in {t_loop:.2f} s = {t_loop / n * 1000:.1f} ms per trial")

    t0 = time.perf_counter()
    connect(None)
    print(f"    Ray start (not counted): {time.perf_counter() - t0:.2f} s, CPUs {ray.cluster_resources()['CPU']:g}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hsbench-") as tmp:
        if args.mixer:
            mixer_sweep(Path(tmp), args.mixer, args.mixer_seeds)
        if args.only_mixer:
            print(f"load average at end: {os.getloadavg()[0]:.2f}")
            return
        cases = [("b", 1, True), ("b0", 1, False)] + ([] if args.skip_multi else [("c", 2, True)])
        for tag, workers, ckpt in cases:
            t, done = sweep_time(space(f"s{tag}", n, workers, checkpoint=ckpt), Path(tmp))
            per = (t - t_loop) / n
            rows.append((tag, workers, ckpt, t, done, per, t / t_loop))
            print(f"({tag}) sweep, workers {workers}, checkpoints {'on' if ckpt else 'off'}: {done}/{n} trials in "
                  f"{t:.2f} s; overhead {per:.2f} s per trial; {t / t_loop:.0f}x the plain loop")
        if not args.skip_concurrency:
            times = {}
            for conc in (1, 2):
                sp = space(f"conc{conc}", 8, args.concurrency_workers, concurrent=conc, steps=3000, every=500)
                times[conc], _ = sweep_time(sp, Path(tmp))
                print(f"concurrency {conc}: 8 trials of 3000 steps ({args.concurrency_workers} worker(s) each) in "
                      f"{times[conc]:.2f} s")
            print(f"concurrency efficiency T1/(2*T2) = {times[1] / (2 * times[2]):.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
