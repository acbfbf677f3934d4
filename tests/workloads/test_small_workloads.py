"""digits_cnn, tabular, synthetic_2d and least_squares: their data, models and option checks, against numbers
computed independently (by hand, numpy's least squares, scikit-learn's own loaders)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, validate_workload
from hyperswitch.workloads.least_squares import regression_data
from hyperswitch.workloads.synthetic import FUNCTIONS, OPTIMA, STARTS, distance_to_optimum


def single(opt):
    return Policy.from_spec({"type": "single", "optimizer": opt})


@pytest.mark.parametrize(("spec", "key", "rule"), [
    ({"name": "digits_cnn", "channels": 0}, "workload.channels", "must be >= 1"),
    ({"name": "digits_cnn", "batch_size": 2.5}, "workload.batch_size", "must be an integer"),
    ({"name": "digits_cnn", "dataset_fraction": 0}, "workload.dataset_fraction", "must be > 0.0"),
    ({"name": "digits_cnn", "kernel": 3}, "workload.kernel", "unknown key"),
    ({"name": "tabular", "dataset": "iris"}, "workload.dataset", "must be one of breast_cancer, wine"),
    ({"name": "tabular", "val_fraction": 0.9}, "workload.val_fraction", "must be <= 0.5"),
    ({"name": "tabular", "split_seed": -1}, "workload.split_seed", "must be >= 0"),
    ({"name": "synthetic_2d", "function": "sphere"}, "workload.function", "must be one of rosenbrock"),
    ({"name": "synthetic_2d", "start": [1.0]}, "workload.start", "a list of 2 finite numbers"),
    ({"name": "synthetic_2d", "start": [1.0, "a"]}, "workload.start", "a list of 2 finite numbers"),
    ({"name": "synthetic_2d", "steps_per_epoch": 0}, "workload.steps_per_epoch", "must be >= 1"),
    ({"name": "synthetic_2d", "batch_size": 8}, "workload.batch_size", "unknown key"),
    ({"name": "least_squares", "noise": -0.1}, "workload.noise", "must be >= 0.0"),
    ({"name": "least_squares", "condition": 0.5}, "workload.condition", "must be >= 1.0"),
    ({"name": "least_squares", "d": 0}, "workload.d", "must be >= 1"),
])
def test_bad_options_name_key_rule_and_value(spec, key, rule):
    with pytest.raises(ConfigError) as err:
        validate_workload(spec)
    assert err.value.key == key and rule in err.value.rule
    bad = next(v for k, v in spec.items() if k != "name" and key.endswith("." + k))
    assert err.value.value == bad


@pytest.mark.parametrize(("spec", "n"), [
    ({"name": "tabular", "dataset": "wine", "dataset_fraction": 0.1, "batch_size": 32}, 13),
    ({"name": "digits_mlp", "dataset_fraction": 0.01, "batch_size": 64}, 14),
    ({"name": "digits_cnn", "dataset_fraction": 0.01, "batch_size": 64}, 14),
    ({"name": "least_squares", "n": 100, "batch_size": 81}, 80),
    ({"name": "char_lm", "chars": 2000, "context": 15, "batch_size": 114}, 113),
    ({"name": "transfer", "dataset_fraction": 0.05, "batch_size": 64, "pretrain_epochs": 0}, 35),
])
def test_a_batch_larger_than_the_training_set_is_an_error_not_zero_steps(spec, n):
    with pytest.raises(ConfigError) as err:
        build_workload(spec, seed=0)
    assert err.value.key == "workload.batch_size" and f"number of training examples ({n};" in err.value.rule
    assert err.value.value == spec["batch_size"]


def test_digits_cnn_gives_kfac_conv2d_layers_and_trains_with_kfac():
    spec = {"name": "digits_cnn", "channels": 4}
    wl = build_workload(spec, seed=0)
    assert wl.train.x.shape[1:] == (1, 8, 8)
    assert sum(isinstance(m, nn.Conv2d) for m in wl.model.modules()) == 2
    pol = single({"name": "kfac", "lr": 0.05})
    stepper = pol.build(wl.model, wl.loss_fn)
    kinds = {type(layer.module).__name__ for layer in stepper.optimizer.layers}
    assert kinds == {"Conv2d", "Linear"}
    before = wl.evaluate()
    res = train_run(spec, pol, {"epochs": 1, "eval_every": 1000}, seed=0)
    assert res.summary["val_loss"] < 0.5 * before["val_loss"] and res.summary["val_accuracy"] > 0.75


@pytest.mark.parametrize(("dataset", "rows", "features", "classes"),
                         [("breast_cancer", 569, 30, 2), ("wine", 178, 13, 3)])
def test_tabular_is_the_bundled_table_standardised_on_the_training_rows(dataset, rows, features, classes):
    from sklearn import datasets

    raw = getattr(datasets, f"load_{dataset}")()
    wl = build_workload({"name": "tabular", "dataset": dataset, "val_fraction": 0.25}, seed=0)
    xtr, xval = wl.train.x.numpy(), wl.val_x.numpy()
    assert len(xtr) + len(xval) == rows == len(raw.target) and xtr.shape[1] == features
    assert len(xval) == round(0.25 * rows)
    np.testing.assert_allclose(xtr.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(xtr.std(axis=0), 1.0, atol=1e-3)
    # Every row is a raw row standardised with the training rows' statistics: the correlation matrix is the raw one.
    np.testing.assert_allclose(np.corrcoef(np.vstack([xtr, xval]).T), np.corrcoef(raw.data.T), atol=1e-4)
    labels = np.concatenate([wl.train.y.numpy(), wl.val_y.numpy()])
    assert sorted(np.bincount(labels)) == sorted(np.bincount(raw.target)) and labels.max() + 1 == classes
    assert wl.model[-1].out_features == classes


@pytest.mark.parametrize(("function", "point", "value"), [
    ("rosenbrock", (0.0, 0.0), 1.0),
    ("rosenbrock", (-1.2, 1.0), 100 * (1 - 1.44) ** 2 + 2.2 ** 2),  # 24.2
    ("beale", (0.0, 0.0), 1.5 ** 2 + 2.25 ** 2 + 2.625 ** 2),
    ("beale", (1.0, 1.0), 1.5 ** 2 + 2.25 ** 2 + 2.625 ** 2),  # x·y^k − x = 0 at (1, 1)
    ("himmelblau", (0.0, 0.0), 121.0 + 49.0),
    ("himmelblau", (1.0, 1.0), 81.0 + 25.0),
    ("griewank", (math.pi, 0.0), 2.0 + math.pi ** 2 / 4000),
    ("ackley", (1.0, 0.0), 20.0 * (1.0 - math.exp(-0.2 * math.sqrt(0.5)))),
])
def test_function_values_match_hand_computed_numbers(function, point, value):
    assert float(FUNCTIONS[function](torch.tensor(point, dtype=torch.float64))) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_is_zero_at_its_optima_and_falls_under_adam(function):
    for opt in OPTIMA[function]:
        assert float(FUNCTIONS[function](torch.tensor(opt, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-9)
    spec = {"name": "synthetic_2d", "function": function}
    wl = build_workload(spec, seed=0)
    assert [tuple(p.tolist()) for p in wl.model.parameters()] == [STARTS[function]]
    res = train_run(spec, single({"name": "adam", "lr": 0.01}), {"steps": 100, "eval_every": 50}, seed=0)
    start_value = float(FUNCTIONS[function](torch.tensor(STARTS[function], dtype=torch.float64)))
    assert res.steps[0]["loss"] == pytest.approx(start_value)
    assert res.summary["val_loss"] < res.steps[0]["loss"]
    assert [r["val_accuracy"] for r in res.steps] == [None] * 100  # no accuracy for a 2-D function


def test_start_option_and_distance_and_divergence():
    spec = {"name": "synthetic_2d", "function": "himmelblau", "start": [2.5, 2.5]}
    wl = build_workload(spec, seed=5)
    assert wl.model.point.tolist() == [2.5, 2.5] and wl.model.point.dtype == torch.float64
    assert distance_to_optimum("himmelblau", (2.5, 2.5)) == pytest.approx(math.hypot(0.5, 0.5))
    res = train_run(spec, single({"name": "sgd", "lr": 0.01}), {"steps": 200, "eval_every": 200}, seed=0)
    assert res.summary["val_loss"] < 1e-8 and len(wl.train) == 100
    end = res.steps[-1]
    assert end["val_accuracy"] is None and res.summary["best_val_accuracy"] is None
    assert res.summary["time_to_target_s"] is None
    blow = train_run({"name": "synthetic_2d", "function": "rosenbrock"}, single({"name": "sgd", "lr": 1.0}),
                     {"steps": 100, "eval_every": 50}, seed=0)
    assert blow.status == "diverged" and blow.events[-1]["kind"] == "diverged" and len(blow.steps) < 100


def test_least_squares_data_and_training_reach_the_numpy_solution():
    n, d, noise = 500, 6, 0.2
    xtr, ytr, xval, yval, w, b = regression_data(n, d, noise, 10.0, 0, 0.2)
    assert xtr.shape == (400, d) and xval.shape == (100, d)
    np.testing.assert_allclose(xtr.std(axis=0), np.logspace(0, -1, d), rtol=0.2)
    design = np.hstack([xtr, np.ones((len(xtr), 1))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, ytr.astype(np.float64), rcond=None)
    np.testing.assert_allclose(coef, [*w, b], atol=0.1)  # the data are linear in x with these weights
    best_val = float(np.mean((np.hstack([xval, np.ones((len(xval), 1))]) @ coef - yval) ** 2))
    assert best_val == pytest.approx(noise ** 2, rel=0.5)
    spec = {"name": "least_squares", "n": n, "d": d, "noise": noise, "batch_size": 40}
    res = train_run(spec, single({"name": "adam", "lr": 0.05}), {"epochs": 6, "eval_every": 1000}, seed=0)
    assert res.summary["val_loss"] < 1.5 * best_val and res.summary["val_accuracy"] is None


def test_digits_arrays_are_scikit_learns_digits_without_importing_it():
    """The bundled file read with numpy gives load_digits' images and labels exactly; a fresh interpreter that
    builds the digits workload does not import scikit-learn (0.7 s of every trial process's start)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from hyperswitch.workloads.digits import digits_arrays

    images, labels = digits_arrays()
    ref = load_digits()
    assert images.shape == (1797, 64) and np.array_equal(images, ref.data)
    assert labels.dtype == np.int64 and np.array_equal(labels, ref.target)
    code = ("import sys; from hyperswitch.workloads import build_workload; "
            "build_workload({'name': 'digits_mlp'}, 0); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
