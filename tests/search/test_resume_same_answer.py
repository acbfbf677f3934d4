"""A study interrupted with Ctrl-C (a real SIGINT to ``hyperswitch sweep``) and resumed proposes the same
configurations, in the same order, as the same study run without interruption, and reaches the same best
configuration. The space uses TPE with 13 configurations x 2 seeds, 2 trials at a time: Optuna's TPE draws its
first ``n_startup_trials`` = 10 configurations at random and proposes c0011 and c0012 from the results of
c0000..c0009 / c0010 (one configuration may be in flight unseen: L = ceil(2 / 2) = 1), so both the random
start-up and TPE proper are compared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hyperswitch.export.select import select_configurations
from hyperswitch.results import open_study
from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from tests.search.test_proposals import switch_space

pytestmark = pytest.mark.slow

def space_text(name: str) -> str:
    return switch_space(name, "search: {algorithm: tpe, samples: 13, seed: 0}\nseeds: 2\nmax_concurrent: 2\n",
                        workload=", batch_size: 32, hidden: 16")
PARAMS = ("lr", "momentum", "switch_at")


def config_map(study) -> dict[str, tuple]:
    t = study.trials
    out: dict[str, tuple] = {}
    for cid, g in t.groupby("config_id", sort=True):
        values = {tuple(float(r[p]) for p in PARAMS) for _, r in g.iterrows()}
        assert len(values) == 1, (cid, values)  # every seed of a configuration has its values
        out[str(cid)] = values.pop()
    return out


def test_interrupted_and_resumed_tpe_sweep_proposes_what_an_uninterrupted_one_does(local_ray, space_file, tmp_path,
                                                                                    ray_tmp):
    storage = tmp_path / "runs"
    whole = run_sweep(load_space(space_file(space_text("whole"), "whole.yaml")), storage=storage,
                      out=lambda s: None)

    path = space_file(space_text("cut"), "cut.yaml")
    env = {**os.environ, "TMPDIR": str(ray_tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "hyperswitch", "sweep", str(path), "--storage", str(storage)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while not ((storage / "cut" / "study.json").exists() and len(open_study(storage / "cut").finished()) >= 4):
        if proc.poll() is not None:
            pytest.fail(f"sweep ended early: {proc.stdout.read()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("4 trials did not finish within 240 s")
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    cut = open_study(storage / "cut")
    assert 4 <= len(cut.trials) < 26, out
    # Only hyperswitch's own way to continue is offered (item 6: not Ray's `Tuner.restore(...)`).
    assert "--resume" in out and "Tuner.restore" not in out, out

    resumed = run_sweep(load_space(path), storage=storage, resume=True, out=lambda s: None)
    assert len(resumed.trials) == 26 and resumed.trials.trial_id.is_unique
    assert config_map(resumed) == config_map(whole)  # config_id -> (lr, momentum, switch_at), all 13
    best = [select_configurations(s.trials, "val_accuracy", "max").choices[0] for s in (whole, resumed)]
    assert best[0].config_id == best[1].config_id and best[0].values == best[1].values, best
