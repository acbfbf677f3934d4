"""Checkpoints: a run resumed from the state taken at an evaluation continues exactly as if never stopped.

The reference is the same run uninterrupted. Step 40 falls mid-epoch (22 batches of 64 per epoch), so the
data order, the policy's phase (switch, fusion, IOMT cycle) and the optimizer buffers all have to come back.
"""

from __future__ import annotations

import io
import shutil

import pytest
import torch

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.train import driver
from hyperswitch.train.loop import train_run, validate_train

WL = {"name": "digits_mlp", "batch_size": 64, "hidden": 32}
TRAIN = {"steps": 80, "eval_every": 10}
POLICIES = {
    "sgdm": {"type": "single", "optimizer": {"name": "sgdm", "lr": 0.05}},
    # fusion runs steps 36-45: the checkpoint at 40 is inside it
    "kfac_to_sgdm_fusion": {"type": "switch", "phase1": {"name": "kfac", "lr": 0.05, "damping": 0.1},
                            "phase2": {"name": "sgdm", "lr": 0.05}, "switch": {"at": 35},
                            "corrector": {"T1": 10, "mu": 0.8}},
    "iomt": {"type": "iomt", "candidates": [{"name": "sgdm", "lr": 0.05}, {"name": "adam", "lr": 1e-3}],
             "n_ini": 2, "tau": 6},
}


def _run(policy: dict, resume=None, keep_at=None):
    states = {}

    def on_eval(row, result, state):
        if state is not None:
            buf = io.BytesIO()  # through torch.save/torch.load as a real checkpoint goes
            torch.save(state, buf)
            buf.seek(0)
            states[row["step"]] = torch.load(buf, weights_only=True)

    res = train_run(WL, Policy.from_spec(policy), TRAIN, seed=1, on_eval=on_eval, resume=resume)
    return res, states


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_resume_mid_epoch_is_exact(name):
    full, states = _run(POLICIES[name])
    assert sorted(states) == [10, 20, 30, 40, 50, 60, 70]  # every evaluation but the last
    resumed, _ = _run(POLICIES[name], resume=states[40])
    assert [r["step"] for r in resumed.steps] == list(range(1, 81))  # each step once
    for key in ("loss", "lr", "optimizer", "val_accuracy", "epoch"):
        assert [r[key] for r in resumed.steps] == [r[key] for r in full.steps], key
    assert resumed.events == full.events
    assert resumed.restarts == 1 and resumed.summary["restarts"] == 1 and full.summary["restarts"] == 0
    assert resumed.summary["val_accuracy"] == full.summary["val_accuracy"]


def test_checkpoint_file_round_trip_and_truncated_file_skipped(tmp_path):
    _, states = _run(POLICIES["sgdm"])
    for step in (20, 40):
        d = driver.save_state(states[step])
        shutil.move(d, tmp_path / f"checkpoint_{step}")
    (tmp_path / "checkpoint_60").mkdir()
    (tmp_path / "checkpoint_60" / driver.STATE_FILE).write_bytes(b"PK\x03\x04 cut short")
    best = driver.latest_checkpoint([tmp_path])
    assert best is not None and best["step"] == 40


def test_checkpoint_every_rules():
    assert validate_train({"steps": 10, "eval_every": 5, "checkpoint_every": 10}).checkpoint_every == 10
    assert validate_train({"steps": 10, "eval_every": 5, "checkpoint_every": 0}).checkpoint_every == 0
    with pytest.raises(ConfigError, match="multiple of eval_every"):
        validate_train({"steps": 10, "eval_every": 5, "checkpoint_every": 7})


def test_checkpoint_every_controls_which_evaluations_checkpoint():
    seen = {}
    pol = Policy.from_spec(POLICIES["sgdm"])
    train_run(WL, pol, {**TRAIN, "checkpoint_every": 30}, seed=1,
              on_eval=lambda row, res, state: seen.__setitem__(row["step"], state is not None))
    assert seen == {10: False, 20: False, 30: True, 40: False, 50: False, 60: True, 70: False}
