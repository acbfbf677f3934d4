"""The training loop on the real digits workload: metrics, switch, divergence."""

from __future__ import annotations

import json
import math

from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run

WL = {"name": "digits_mlp", "batch_size": 64}


def test_switch_run_records_steps_and_event():
    pol = Policy.from_spec({"type": "switch", "phase1": {"name": "adam", "lr": 1e-3},
                            "phase2": {"name": "sgdm", "lr": 0.05}, "switch": {"at": 30}})
    res = train_run(WL, pol, {"steps": 60, "eval_every": 20, "target_accuracy": 0.5}, seed=0)
    assert res.status == "completed"
    assert [r["step"] for r in res.steps] == list(range(1, 61))
    assert [r["optimizer"] for r in res.steps] == ["adam"] * 30 + ["sgdm"] * 30
    assert [r["step"] for r in res.steps if r["val_accuracy"] is not None] == [20, 40, 60]
    assert res.summary["switch_step"] == 31
    assert res.events[0]["kind"] == "switch" and json.loads(res.events[0]["detail"])["to"] == "sgdm"
    s = res.summary
    assert s["val_accuracy"] > 0.8 and s["time_to_target_s"] is not None and s["steps_done"] == 60
    assert s["peak_memory_bytes"] > 0 and s["memory_source"] == "cpu_tensor_bytes"
    # the step and the time of the first evaluation at or above the target, read off the run's own records
    first = next(r for r in res.steps if r["val_accuracy"] is not None and r["val_accuracy"] >= 0.5)
    assert s["steps_to_target"] == first["step"] and s["time_to_target_s"] == first["elapsed_s"]


def test_steps_to_target_for_a_target_loss_and_when_never_reached():
    pol = Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": 0.05}})
    reached = train_run(WL, pol, {"steps": 60, "eval_every": 20, "target_loss": 1.5}, seed=0)
    first = next(r for r in reached.steps if r["val_loss"] is not None and r["val_loss"] <= 1.5)
    assert reached.summary["steps_to_target"] == first["step"]
    never = train_run(WL, pol, {"steps": 40, "eval_every": 20, "target_loss": 1e-9}, seed=0)
    assert never.summary["steps_to_target"] is None and never.summary["time_to_target_s"] is None


def test_same_seed_same_numbers_other_seed_differs():
    pol = Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": 0.05}})
    a = train_run(WL, pol, {"steps": 25, "eval_every": 25}, seed=3)
    b = train_run(WL, pol, {"steps": 25, "eval_every": 25}, seed=3)
    c = train_run(WL, pol, {"steps": 25, "eval_every": 25}, seed=4)
    assert [r["loss"] for r in a.steps] == [r["loss"] for r in b.steps]
    assert [r["loss"] for r in a.steps] != [r["loss"] for r in c.steps]


def test_divergence_stops_and_is_recorded():
    pol = Policy.from_spec({"type": "single", "optimizer": {"name": "sgd", "lr": 1e6}})
    res = train_run(WL, pol, {"steps": 200, "eval_every": 50}, seed=0)
    assert res.status == "diverged"
    last = res.steps[-1]
    assert last["step"] < 200 and (not math.isfinite(last["loss"]) or abs(last["loss"]) > 1e6)
    assert res.events[-1]["kind"] == "diverged"


def test_epochs_instead_of_steps():
    pol = Policy.from_spec({"type": "single", "optimizer": {"name": "adam"}})
    res = train_run(WL, pol, {"epochs": 2, "eval_every": 1000}, seed=0)
    per_epoch = 1437 // 64  # 1437 training images, drop_last
    assert res.summary["steps_done"] == 2 * per_epoch and res.steps[-1]["epoch"] == 2
