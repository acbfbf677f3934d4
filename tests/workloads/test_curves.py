"""curves_autoencoder: the generated CURVES images (deterministic per seed, in [0, 1], curve-shaped, the fast
renderer equal to the brute-force nearest-sample one), the autoencoder's shape, training and evaluation with
the same results for the same seed, data-parallel shards, option errors, K-FAC on every Linear layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, get_workload, validate_workload
from hyperswitch.workloads import curves as cv

SMALL = {"name": "curves_autoencoder", "n_train": 256, "n_test": 128, "batch_size": 32}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on shared cores two threads per process ran these tests 20x slower (oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _brute_force(points: np.ndarray) -> np.ndarray:
    """Each pixel's intensity from its distance to the nearest of all the curve's samples."""
    t = torch.linspace(0.0, 1.0, cv.SAMPLES, dtype=torch.float64)
    basis = torch.stack([(2 * t - 1) * (t - 1), 4 * t * (1 - t), t * (2 * t - 1)])
    c = (torch.einsum("kS,nkd->nSd", basis, torch.from_numpy(points)) * cv.SIDE).float()
    centres = torch.arange(cv.SIDE, dtype=torch.float32) + 0.5
    d2 = ((centres[None, :, None, None] - c[:, None, None, :, 1]) ** 2
          + (centres[None, None, :, None] - c[:, None, None, :, 0]) ** 2).amin(-1)
    return (cv.HALF_WIDTH + 0.5 - d2.sqrt()).clamp(0, 1).reshape(len(points), -1).numpy()


def test_images_are_deterministic_curves_in_the_unit_interval():
    a = cv.curves_images(300, 0, 0)
    cv.curves_images.cache_clear()
    again = cv.curves_images(300, 0, 0)
    assert a is not again and np.array_equal(a, again)
    assert not np.array_equal(a, cv.curves_images(300, 1, 0)) and not np.array_equal(a, cv.curves_images(300, 0, 1))
    assert a.shape == (300, 784) and a.dtype == np.float32 and a.min() == 0.0 and a.max() == 1.0
    on = (a > 0).mean(axis=1)
    assert 0.005 < on.min() and on.max() < 0.25 and 0.04 < on.mean() < 0.15  # a stroke, not blobs or noise
    assert ((a > 0) & (a < 1)).any(axis=1).all()  # anti-aliased edges
    # A curve is one connected stroke: every nonzero pixel touches another (8-neighbourhood).
    img = np.pad(a.reshape(-1, 28, 28) > 0, ((0, 0), (1, 1), (1, 1)))
    neighbours = sum(np.roll(np.roll(img, dy, 1), dx, 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) - img
    assert (neighbours[img] > 0).all()
    points = np.random.default_rng([0, 0]).uniform(0.15, 0.85, size=(300, 3, 2))
    np.testing.assert_array_equal(a[:40], _brute_force(points[:40]))


def test_autoencoder_shape_and_code_layer():
    model = cv.autoencoder()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    widths = [m.in_features for m in linears] + [linears[-1].out_features]
    assert widths == [784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784]
    assert sum(isinstance(m, nn.Sigmoid) for m in model) == 10  # all hidden units but the linear code
    assert isinstance(model[10], nn.Linear) and model[10].out_features == 6 and isinstance(model[11], nn.Linear)


def test_trains_evaluates_and_repeats_for_the_same_seed():
    wl = build_workload(SMALL, seed=0)
    assert get_workload("curves_autoencoder").task == wl.task == "regression"
    assert torch.equal(wl.train.x, wl.train.y) and wl.val_x.shape == (128, 784)
    before = wl.evaluate()
    assert set(before) == {"val_loss", "val_recon_error"}
    assert 784 * 0.6 < before["val_loss"] < 784 * 0.8  # sigmoid outputs near ½ at the start: about 784·ln 2
    policy = Policy.from_spec({"type": "single", "optimizer": {"name": "sgdm", "lr": 0.01, "momentum": 0.9}})
    runs = [train_run(SMALL, policy, {"steps": 12, "eval_every": 6}, seed=0) for _ in range(2)]
    assert runs[0].status == "completed" and runs[0].summary["val_accuracy"] is None
    assert runs[0].steps == [] or [r["loss"] for r in runs[0].steps] == [r["loss"] for r in runs[1].steps]
    last = runs[0].steps[-1]
    assert last["val_loss"] == runs[1].steps[-1]["val_loss"] and last["val_recon_error"] == runs[1].steps[-1][
        "val_recon_error"]
    assert last["val_loss"] < 0.7 * before["val_loss"] and last["val_recon_error"] < before["val_recon_error"]
    other = build_workload(SMALL, seed=1)  # the seed fixes the initialisation, not the data
    assert torch.equal(other.val_x, wl.val_x) and not torch.equal(other.model[0].weight, wl.model[0].weight)


def test_recon_error_is_the_squared_error_per_image():
    wl = build_workload(SMALL, seed=0)
    with torch.no_grad():
        out = torch.sigmoid(wl.model(wl.val_x))
    expected = float(((out - wl.val_x) ** 2).sum(dim=1).mean())
    assert wl.evaluate(batch_size=50)["val_recon_error"] == pytest.approx(expected, rel=1e-5)


def test_data_parallel_shards_tile_the_global_batch():
    whole = build_workload(SMALL, seed=3)
    shards = [build_workload(SMALL, seed=3, rank=r, world_size=2) for r in range(2)]
    for (xw, _), (x0, _), (x1, _) in list(zip(whole.train, *[s.train for s in shards], strict=True))[:3]:
        assert torch.equal(torch.cat([x0, x1]), xw)


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("n_train", 0, "must be >= 1"),
    ("n_test", 2.5, "must be an integer"),
    ("batch_size", "big", "must be an integer"),
    ("dataset_fraction", 0.0, "must be > 0.0"),
])
def test_bad_options_are_one_line_errors(key, value, rule):
    with pytest.raises(ConfigError) as err:
        validate_workload({**SMALL, key: value})
    assert err.value.key == f"workload.{key}" and err.value.rule == rule and err.value.value == value
    assert "\n" not in str(err.value) and key in str(err.value) and str(value) in str(err.value)
    with pytest.raises(ConfigError) as err:
        validate_workload({**SMALL, "width": 3})
    assert "width" in str(err.value)


def test_kfac_preconditions_every_linear_layer_and_trains():
    wl = build_workload(SMALL, seed=0)
    policy = Policy.from_spec({"type": "single", "optimizer": {"name": "kfac", "lr": 0.01, "damping": 1.0}})
    stepper = policy.build(wl.model, wl.loss_fn)
    layers = {layer.module for layer in stepper.optimizer.layers}
    assert layers == {m for m in wl.model.modules() if isinstance(m, nn.Linear)} and len(layers) == 12
    res = train_run(SMALL, policy, {"steps": 8, "eval_every": 8}, seed=0)
    assert res.status == "completed" and res.summary["val_loss"] < wl.evaluate()["val_loss"]


CURVES_SPACE = """\
name: curves_recon
workload: {name: curves_autoencoder, n_train: 128, n_test: 64, batch_size: 32}
policy: {type: single, optimizer: {name: sgdm, lr: $lr, momentum: 0.9}}
train: {steps: 8, eval_every: 4}
parameters:
  lr: {type: categorical, choices: [0.01, 0.02]}
search: grid
metric: val_recon_error
"""


@pytest.mark.slow
def test_a_sweep_records_and_optimises_the_reconstruction_error(local_ray, tmp_path):
    """val_recon_error is a results column (steps at evaluations, trials) and a metric a sweep selects by."""
    from hyperswitch.results import open_study
    from hyperswitch.search.runner import run_sweep
    from hyperswitch.search.space import load_space

    path = tmp_path / "curves_recon.yaml"
    path.write_text(CURVES_SPACE)
    study = run_sweep(load_space(path), storage=tmp_path / "runs", seeds=1, out=lambda line: None)
    trials = open_study(tmp_path / "runs" / "curves_recon").trials
    assert list(trials.status) == ["completed", "completed"] and len(study.trials) == 2
    evals = open_study(tmp_path / "runs" / "curves_recon").steps.dropna(subset=["val_loss"])
    assert len(evals) == 4 and evals.val_recon_error.notna().all() and (evals.val_recon_error > 0).all()
    for _, t in trials.iterrows():  # the trial's value is its last evaluation's
        last = evals[evals.trial_id == t.trial_id].sort_values("step").iloc[-1]
        assert t.val_recon_error == last.val_recon_error and t.val_loss == last.val_loss
    best = study.best_trial()
    assert study.metric == "val_recon_error" and study.mode == "min"
    assert best is not None and best["val_recon_error"] == trials.val_recon_error.min()
