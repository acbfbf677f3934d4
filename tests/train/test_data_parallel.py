"""Data parallel on a real worker group on Ray (``train.group``, gloo): 2 workers on halves of each global batch
train the same model as 1 process on the whole batch. One Mixer run covers K-FAC (factors all-reduced), the switch
decided on global-mean losses, the fusion period and SGD with momentum after it; the optimizers' own collectives are
checked without Ray in tests/optim/test_*_distributed.py."""

from __future__ import annotations

import math
import re

import pytest
import torch

from hyperswitch.train import driver
from tests._helpers import ROOT

pytestmark = pytest.mark.slow

WL = {"name": "digits_mlp", "batch_size": 64, "hidden": 32}
TRAIN = {"steps": 30, "eval_every": 10, "checkpoint_every": 0}
POLICIES = {
    "mixer": {"type": "mixer", "phase1": {"name": "kfac", "lr": 0.05, "damping": 0.1},
              "phase2": {"name": "sgdm", "lr": 0.05}, "switch": {"theta": 0.5, "K": 2, "unit": "step"},
              "corrector": {"T1": 5, "mu": 0.8}},
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_two_workers_match_one_process(local_ray, tmp_path, name):
    job = driver.CliJob(WL, POLICIES[name], TRAIN, seed=0)
    one = job.run(rank=0, world_size=1, device=torch.device("cpu"), resume=None, report=lambda m, s: None)
    two = driver.run_data_parallel(job, workers=2, use_gpu=False, cpus_per_worker=0.49, gpus_per_worker=0,
                                   max_failures=0, in_tune=False)
    assert two["status"] == one["status"] == "completed"
    assert two["summary"]["workers"] == 2 and one["summary"]["workers"] == 1
    l1 = [r["loss"] for r in one["steps"]]
    l2 = [r["loss"] for r in two["steps"]]
    assert len(l2) == len(l1) == 30
    for a, b in zip(l1, l2, strict=True):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), (a, b)
    assert [r["optimizer"] for r in two["steps"]] == [r["optimizer"] for r in one["steps"]]
    assert [(e["step"], e["kind"]) for e in two["events"]] == [(e["step"], e["kind"]) for e in one["events"]]
    # the switch decision (from global-mean losses) is the same step on both workers, and all three phases ran
    assert "switch" in {e["kind"] for e in two["events"]}
    assert {"kfac", "fusion", "sgdm"} <= {r["optimizer"] for r in two["steps"]}
    assert abs(two["summary"]["val_accuracy"] - one["summary"]["val_accuracy"]) <= 1 / 360  # at most one image


def test_train_command_with_two_workers(local_ray, capsys):
    from hyperswitch.cli import main

    policy = str(ROOT / "policies" / "sgdm.yaml")
    assert main(["train", policy, "--steps", "40", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 workers, CPU: completed" in out
    assert re.search(r"steps_done\s+40\n", out) and re.search(r"val_accuracy\s+0\.\d{4}", out)
    assert main(["train", policy, "--steps", "40", "--workers", "3"]) == 2  # 64 % 3 != 0
    assert "must be divisible by the number of workers" in capsys.readouterr().err
