"""IOMT (002, docs/algorithms.md#iomt) against references written here: the score by hand, weights and the seeded
weighted choice replayed with numpy, the surrogate choice against scikit-learn GPs fitted in the test, PCA
against torch.linalg.svdvals; resume mid-cycle; validation; the digits workload."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy, load_policy
from hyperswitch.switching._iomt_score import cycle_score
from hyperswitch.train.loop import train_run
from tests._helpers import ROOT

THREE = [{"name": "sgd", "lr": 0.1}, {"name": "sgdm", "lr": 0.05}, {"name": "adam", "lr": 0.01}]


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def batch(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 5, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()


class ScriptedLoss:
    """Reports the given losses in order (float64, so exactly); its gradient is zero, so the parameters stay
    put."""

    def __init__(self, values):
        self.values = list(values)
        self.i = 0

    def __call__(self, outputs, targets):
        v = self.values[self.i]
        self.i += 1
        return outputs.sum().double() * 0.0 + v


def stepper(spec, loss_fn=nn.functional.cross_entropy, m=None):
    return Policy.from_spec({"type": "iomt", **spec}).build(m if m is not None else model(), loss_fn)


def run(st, steps, start=1):
    return [st.step(*batch(t)) for t in range(start, start + steps)]


def ref_score(l0, ls, alpha):
    tau = len(ls)
    prev = [l0] + ls[:-1]
    d = [(a - b) / max(a, b) for a, b in zip(prev, ls, strict=True)]
    mu = sum(d) / tau
    sd = math.sqrt(sum((x - mu) ** 2 for x in d) / tau)
    up = (l0 - max(ls)) / (max(l0, max(ls)) * tau)
    low = (l0 - min(ls)) / (max(l0, min(ls)) * tau)
    return math.tanh((mu + up + low) / 3 + alpha * sd)


# --- score, weights, selection modes ----------------------------------------------------------------------
def test_cycle_score_hand_computed_and_l0_conventions():
    # cycle 2 of the script below: l0 = 2.0 (cycle 1's last loss), losses 1.8, 1.5, 1.6, 1.2, tau 4, alpha 0.5
    d = [0.2 / 2.0, 0.3 / 1.8, -0.1 / 1.6, 0.4 / 1.6]  # 0.1, 1/6, -0.0625, 0.25
    mu = (0.1 + 1 / 6 - 0.0625 + 0.25) / 4
    sd = math.sqrt(sum((x - mu) ** 2 for x in d) / 4)
    s2 = math.tanh((mu + 0.2 / (2.0 * 4) + 0.8 / (2.0 * 4)) / 3 + 0.5 * sd)
    assert s2 == pytest.approx(0.13601, abs=1e-5)
    # cycle 1: l0 = its own first loss 2.5; losses 2.5, 2.2, 2.1, 2.0
    d1 = [0.0, 0.3 / 2.5, 0.1 / 2.2, 0.1 / 2.1]
    mu1 = sum(d1) / 4
    s1 = math.tanh((mu1 + 0.0 + 0.5 / (2.5 * 4)) / 3 + 0.5 * math.sqrt(sum((x - mu1) ** 2 for x in d1) / 4))
    assert cycle_score(2.0, [1.8, 1.5, 1.6, 1.2], 0.5) == pytest.approx(s2, rel=1e-12)

    st = stepper({"candidates": [{"name": "sgd", "lr": 0.1}], "tau": 4, "n_ini": 5},
                 ScriptedLoss([2.5, 2.2, 2.1, 2.0, 1.8, 1.5, 1.6, 1.2, 1.0]))
    reports = run(st, 9)
    assert [r.loss for r in reports] == pytest.approx([2.5, 2.2, 2.1, 2.0, 1.8, 1.5, 1.6, 1.2, 1.0])
    assert st.surrogates.y[0] == pytest.approx([s1, s2], rel=1e-12)
    assert [e.detail["score"] for r in reports for e in r.events] == pytest.approx([None, s1, s2])


def test_weights_update_floor_and_seeded_weighted_choice():
    # random selection throughout; omega_min 0.45 so that the increasing-loss cycle 1 hits the floor:
    # by hand, l0 1.0, losses 2, 4, 8, 16: every delta -0.5, sigma 0, up -15/64, low -1/8
    s_up = math.tanh((-0.5 - 15 / 64 - 1 / 8) / 3)
    assert (s_up + 1) / 2 < 0.45
    losses = [1.4, 1.2, 1.1, 1.0, 2.0, 4.0, 8.0, 16.0, 15.0, 14.0, 13.0, 12.0, 13.0, 12.0, 11.0, 11.5]
    st = stepper({"candidates": THREE, "tau": 4, "select": "random", "omega_min": 0.45, "seed": 3},
                 ScriptedLoss(losses))
    rng, w, prev_last = np.random.default_rng(3), [1.0, 1.0, 1.0], None
    for i in range(4):
        reports = run(st, 4, start=4 * i + 1)
        (event,) = reports[0].events
        assert event.detail["candidate"] == rng.choice(3, p=np.array(w) / sum(w))
        assert event.detail["select"] == "random"
        cyc = losses[4 * i: 4 * i + 4]
        s = ref_score(prev_last if prev_last is not None else cyc[0], cyc, 0.5)
        w[event.detail["candidate"]] = max((s + 1) / 2, 0.45)
        prev_last = cyc[-1]
        assert st.weights == pytest.approx(w, rel=1e-12)
        if i == 1:
            assert st.weights[event.detail["candidate"]] == 0.45


def test_surrogate_phase_updates_weights_only_in_the_first_n_ini_cycles():
    st = stepper({"candidates": THREE, "tau": 2, "n_ini": 2})
    first = run(st, 4)
    after_ini = list(st.weights)
    chosen = {e.detail["candidate"] for r in first for e in r.events}
    assert all(after_ini[j] != 1.0 for j in chosen) and all(after_ini[j] == 1.0 for j in set(range(3)) - chosen)
    rest = run(st, 8, start=5)
    assert st.weights == after_ini
    assert [e.detail["select"] for r in first + rest for e in r.events] == ["random"] * 2 + ["surrogate"] * 4


def test_cyclical_visits_candidates_in_order_with_events():
    st = stepper({"candidates": THREE, "tau": 2, "select": "cyclical"})
    reports = run(st, 16)
    labels = ["sgd(lr=0.1)", "sgdm(lr=0.05)", "adam(lr=0.01)"]
    assert [r.optimizer for r in reports] == [labels[(t // 2) % 3] for t in range(16)]
    events = [e for r in reports for e in r.events]
    assert [e.step for e in events] == list(range(1, 17, 2))
    assert [e.detail["candidate"] for e in events] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert events[0].detail["from"] is None and events[0].detail["score"] is None
    assert (events[1].detail["from"], events[1].detail["to"], events[1].detail["name"]) == (labels[0], labels[1],
                                                                                          labels[1])
    assert isinstance(events[1].detail["score"], float)
    assert [r.switched for r in reports] == [t > 0 and t % 2 == 0 for t in range(16)]
    assert [r.lr for r in reports[:6]] == [0.1, 0.1, 0.05, 0.05, 0.01, 0.01]
    assert {e.kind for e in events} == {"iomt_cycle"} and json.loads(events[1].detail_json())["cycle"] == 1


# --- the surrogate choice against independent GPs ----------------------------------------------------------
def ref_gp():
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(1.0, (1e-3, 1e3), nu=2.5) + WhiteKernel(1e-2, (1e-6, 1e1))
    return GaussianProcessRegressor(kernel=kernel, normalize_y=True, random_state=0)


@pytest.mark.parametrize(("transfer", "halving"), [(False, True), (True, True), (True, False)])
def test_surrogate_choice_is_argmax_of_independent_gps(transfer, halving):
    tau, n_ini, cycles, n_halve = 3, 6, 12, 3
    spec = {"candidates": THREE, "tau": tau, "n_ini": n_ini, "n_halve": n_halve, "halving": halving, "seed": 1}
    omega = 0.0
    if transfer:
        spec.update(use_transferability=True, omega_p=0.9, logme=1.0, leep=-0.5, beta=0.4)
        omega = 0.4 * 0.9 + 0.6 * (1 / (1 + math.exp(-1.0)) + 1 / (1 + math.exp(0.5))) / 2
    m = model()
    st = stepper(spec, m=m)
    vs, losses, chosen, stepper_e = [], [], [], {}
    for t in range(1, tau * cycles + 1):
        if (t - 1) % tau == 0:
            vs.append(torch.linalg.svdvals(m[2].weight.detach()).numpy().astype(np.float64)[:2])
            if len(vs) > n_ini:  # what the stepper is about to use for this cycle
                stepper_e[len(vs) - 1] = st.acquisition_values(vs[-1])
        r = st.step(*batch(t))
        losses.append(r.loss)
        chosen += [e.detail["candidate"] for e in r.events]
    scores = [ref_score(losses[i * tau - 1] if i else losses[0], losses[i * tau:(i + 1) * tau], 0.5)
              for i in range(cycles)]
    fitted_everywhere = 0
    for i in range(n_ini, cycles):
        e = []
        for j in range(3):
            idx = [k for k in range(i) if chosen[k] == j]
            if len(idx) < 2:
                mu, sd = 0.0, 1.0
            else:
                gp = ref_gp()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    gp.fit(np.array([vs[k] for k in idx]), np.array([scores[k] for k in idx]))
                mu_a, sd_a = gp.predict(vs[i].reshape(1, -1), return_std=True)
                mu, sd = float(mu_a[0]), float(sd_a[0])
            coef = 1 - (2.0 ** -(i // n_halve) if halving else 1.0) * omega
            e.append(1 / (1 + math.exp(-(mu + coef * sd))))
        fitted_everywhere += all(sum(c == j for c in chosen[:i]) >= 2 for j in range(3))
        assert stepper_e[i] == pytest.approx(e, abs=1e-9)
        assert chosen[i] == int(np.argmax(e)), (i, e)
    assert fitted_everywhere >= 4  # the GPs, not only the prior, decided most choices


# --- compression ----------------------------------------------------------------------------------------
def test_pca_is_top_singular_values_of_the_selected_layers():
    m = model()
    last = stepper({"candidates": THREE, "n_components": 2}, m=m)
    assert np.array_equal(last.state_vector(), torch.linalg.svdvals(m[2].weight.detach()).numpy()[:2])
    every = stepper({"candidates": THREE, "n_components": 2, "layers": "all"}, m=m)
    expected = np.concatenate([torch.linalg.svdvals(m[i].weight.detach()).numpy()[:2] for i in (0, 2)])
    assert np.allclose(every.state_vector(), expected, rtol=0, atol=0)
    wide = stepper({"candidates": THREE, "n_components": 5}, m=m)  # the last layer has 3 singular values
    assert np.array_equal(wide.state_vector(), np.concatenate([torch.linalg.svdvals(m[2].weight.detach()).numpy(),
                                                               [0.0, 0.0]]))
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 2), nn.Conv1d(1, 3, 2))
    st = stepper({"candidates": THREE, "n_components": 2}, m=conv)
    assert np.allclose(st.state_vector(), torch.linalg.svdvals(conv[3].weight.detach().reshape(3, 2)).numpy()[:2])


def test_rp_is_a_fixed_seeded_linear_projection():
    m = model()
    a = stepper({"candidates": THREE, "compress": "rp", "n_components": 3, "seed": 4}, m=m)
    b = stepper({"candidates": THREE, "compress": "rp", "n_components": 3, "seed": 4}, m=m)
    c = stepper({"candidates": THREE, "compress": "rp", "n_components": 3, "seed": 5}, m=m)
    va = a.state_vector()
    assert va.shape == (3,) and np.array_equal(va, b.state_vector()) and not np.allclose(va, c.state_vector())
    with torch.no_grad():
        m[2].weight.mul_(2.0)
    assert np.allclose(a.state_vector(), 2 * va, rtol=1e-12)  # the same projection matrix, applied linearly


# --- state ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [{}, {"reset_state": True, "compress": "rp", "n_ini": 6}])  # 6: random after resume
def test_resume_mid_cycle_continues_identically(extra):
    spec = {"candidates": THREE, "tau": 7, "n_ini": 3, **extra}
    m1 = model()
    s1 = stepper(spec, m=m1)
    r1 = run(s1, 31)
    buf = io.BytesIO()
    torch.save({"model": m1.state_dict(), "stepper": s1.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    assert s1.pos == 3
    m2 = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    m2.load_state_dict(ckpt["model"])
    s2 = stepper(spec, m=m2)
    s2.load_state_dict(ckpt["stepper"])
    rest1, rest2 = run(s1, 29, start=32), run(s2, 29, start=32)
    assert [(r.loss, r.optimizer, r.switched) for r in rest1] == [(r.loss, r.optimizer, r.switched) for r in rest2]
    ev1 = [(e.step, e.detail) for r in rest1 for e in r.events]
    assert ev1 == [(e.step, e.detail) for r in rest2 for e in r.events] and len(ev1) == 4
    assert any(e.detail["select"] == "surrogate" for r in r1 + rest1 for e in r.events)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_state_bytes_sum_over_kept_candidates():
    st = stepper({"candidates": THREE, "tau": 2, "select": "cyclical"})
    run(st, 6)
    n = sum(p.numel() for p in st.model.parameters()) * 4
    step_tensors = sum(1 for _ in st.model.parameters()) * 4  # Adam's per-parameter float32 step counter
    assert st.state_bytes() == 0 + n + (2 * n + step_tensors)  # sgd, sgdm momentum, adam moments
    reset = stepper({"candidates": THREE, "tau": 2, "select": "cyclical", "reset_state": True})
    run(reset, 6)
    assert reset.state_bytes() == 2 * n + step_tensors and len(reset.opts) == 1


# --- validation and files ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "key", "value"), [
    ({"bogus": 1}, "policy.bogus", 1),
    ({"tau": 0}, "policy.tau", 0),
    ({"n_components": 0}, "policy.n_components", 0),
    ({"candidates": [{"name": "sgd"}, {"name": "nope"}]}, "policy.candidates[1].name", "nope"),
    ({"candidates": [{"name": "sgd", "lr": -1.0}]}, "policy.candidates[0].lr", ...),
    ({"candidates": []}, "policy.candidates", []),
    ({"candidates": [{"name": "sgd"}, {"name": "sgd"}]}, "policy.candidates[1]", {"name": "sgd"}),
    ({"select": "best"}, "policy.select", "best"),
    ({"compress": "umap"}, "policy.compress", "umap"),
    ({"omega_min": 0}, "policy.omega_min", 0),
    ({"omega_p": 0.5}, "policy.omega_p", 0.5),
    ({"use_transferability": True, "omega_p": 0.5, "logme": 1.0}, "policy.leep", None),
    ({"use_transferability": True, "omega_p": 2.0, "logme": 1.0, "leep": 0.0}, "policy.omega_p", 2.0),
])
def test_validation_errors_name_key_and_value(spec, key, value):
    with pytest.raises(ConfigError) as err:
        Policy.from_spec({"type": "iomt", **spec})
    assert err.value.key == key
    if value is not ...:
        assert err.value.value == value


def test_defaults_are_the_papers():
    spec = Policy.from_spec({"type": "iomt"}).spec
    assert (spec["tau"], spec["n_ini"], spec["n_components"], spec["compress"], spec["layers"]) == (
        25, 20, 2, "pca", "last")
    assert len(spec["candidates"]) == 15 and {"name": "rmsprop", "lr": 0.001} in spec["candidates"]
    assert (spec["use_transferability"], spec["reset_state"], spec["select"]) == (False, False, "surrogate")


def test_policy_file_loads():
    policy = load_policy(ROOT / "policies" / "iomt_paper.yaml")
    spec = policy.spec
    assert (spec["type"], spec["n_ini"], spec["tau"], spec["n_components"], spec["compress"]) == (
        "iomt", 20, 25, 2, "pca")
    assert spec["candidates"] == Policy.from_spec({"type": "iomt"}).spec["candidates"]
    assert policy.workload["name"] == "digits_mlp" and policy.train == {"steps": 1000, "eval_every": 100}


def test_iomt_trains_digits():
    policy = Policy.from_spec({"type": "iomt", "tau": 10, "n_ini": 4})
    res = train_run({"name": "digits_mlp"}, policy, {"steps": 200, "eval_every": 100}, seed=0)
    assert res.status == "completed" and res.summary["val_accuracy"] > 0.85
    cycles = [json.loads(e["detail"]) for e in res.events if e["kind"] == "iomt_cycle"]
    assert [c["cycle"] for c in cycles] == list(range(20))
    assert {c["select"] for c in cycles} == {"random", "surrogate"}
    assert res.steps[0]["optimizer"] == cycles[0]["name"]
