"""mlp_wide: the teacher task is fixed by split_seed (balanced classes, label noise as asked, validation drawn
the same way), the student's shape follows width/depth, a few steps train and evaluate, the same seed gives the
same run, option errors are one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, validate_workload
from hyperswitch.workloads import mlp_wide as mw

SMALL = {"name": "mlp_wide", "width": 32, "depth": 3, "input_dim": 16, "classes": 5, "n_train": 1024, "n_val": 512,
         "batch_size": 32}
SGDM = Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": 0.1}})


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as in a sweep's trials: a tiny model on 2 shared cores runs faster without thread spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_defaults_are_004s_wide_mlp():
    spec = validate_workload({"name": "mlp_wide"})
    assert (spec["width"], spec["depth"], spec["input_dim"], spec["classes"]) == (2048, 2, 128, 10)
    assert spec["n_train"] == 50_000 and spec["batch_size"] == 64 and spec["label_noise"] == 0.0


def test_student_shape_and_teacher_data():
    wl = build_workload(SMALL, seed=0)
    linears = [m for m in wl.model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32), (32, 32), (32, 32), (32, 5)]
    assert sum(isinstance(m, nn.ReLU) for m in wl.model) == 3
    assert wl.train.x.shape == (1024, 16) and wl.val_x.shape == (512, 16) and wl.train.x.dtype == torch.float32
    shares = np.bincount(torch.cat([wl.train.y, wl.val_y]).numpy(), minlength=5) / 1536
    assert shares.min() > 0.1 and shares.max() < 0.3  # the offsets balance the classes (0.2 each)
    assert abs(float(wl.train.x.std()) - 1.0) < 0.05
    # Validation is drawn the same way as training: a fresh sample, same teacher (a linear probe fit on the
    # training set does about as well on validation as on training data).
    assert not any(torch.equal(wl.val_x[0], row) for row in wl.train.x)
    # Label noise: that share of labels (about (1 - 1/classes) of it visibly) differs from the teacher's.
    noisy = build_workload({**SMALL, "label_noise": 0.5}, seed=0)
    assert torch.equal(noisy.train.x, wl.train.x)  # same inputs; only labels redrawn
    changed = float((noisy.train.y != wl.train.y).double().mean())
    assert 0.3 < changed < 0.5, changed
    other = build_workload({**SMALL, "split_seed": 1}, seed=0)
    assert not torch.equal(other.train.x, wl.train.x) and not torch.equal(other.val_y, wl.val_y)
    half = build_workload({**SMALL, "dataset_fraction": 0.25}, seed=0)
    assert len(half.train.x) == 256 and torch.equal(half.val_x, wl.val_x)
    rows = {tuple(r) for r in wl.train.x.tolist()}
    assert all(tuple(r) in rows for r in half.train.x.tolist())


def test_trains_evaluates_and_the_same_seed_repeats():
    before = build_workload(SMALL, seed=0).evaluate()
    runs = [train_run(SMALL, SGDM, {"steps": 40, "eval_every": 40}, seed=s) for s in (0, 0, 1)]
    assert all(r.status == "completed" and r.summary["steps_done"] == 40 for r in runs)
    a, b, c = runs
    assert [r["loss"] for r in a.steps] == [r["loss"] for r in b.steps]
    assert a.summary["val_loss"] == b.summary["val_loss"] and a.summary["val_accuracy"] == b.summary["val_accuracy"]
    assert [r["loss"] for r in a.steps] != [r["loss"] for r in c.steps]  # the seed sets init and batch order
    assert a.summary["val_loss"] < before["val_loss"]
    assert 0.0 <= a.summary["val_accuracy"] <= 1.0


@pytest.mark.parametrize(("change", "key", "rule"), [
    ({"width": 0}, "workload.width", "must be >= 1"),
    ({"depth": 0}, "workload.depth", "must be >= 1"),
    ({"depth": 2.5}, "workload.depth", "must be an integer"),
    ({"classes": 1}, "workload.classes", "must be >= 2"),
    ({"n_train": 0}, "workload.n_train", "must be >= 1"),
    ({"label_noise": 1.5}, "workload.label_noise", "must be <= 1.0"),
    ({"batch_size": 0}, "workload.batch_size", "must be >= 1"),
    ({"dataset_fraction": 0.0}, "workload.dataset_fraction", "must be > 0.0"),
    ({"input_dim": "wide"}, "workload.input_dim", "must be an integer"),
])
def test_bad_options(change, key, rule):
    with pytest.raises(ConfigError) as err:
        validate_workload({**SMALL, **change})
    assert err.value.key == key and rule in err.value.rule and "\n" not in str(err.value)
    assert err.value.value == change[key.split(".")[1]]


def test_batch_larger_than_the_training_set_is_an_error():
    with pytest.raises(ConfigError, match="must be <= the number of training examples"):
        build_workload({**SMALL, "n_train": 100, "batch_size": 128}, seed=0)


def test_teacher_is_cached_per_options():
    mw.teacher_data.cache_clear()
    build_workload(SMALL, seed=0)
    build_workload(SMALL, seed=5)
    assert mw.teacher_data.cache_info().hits >= 1
