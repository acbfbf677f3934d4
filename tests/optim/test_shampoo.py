"""Shampoo against dense references: inverse fourth roots by numpy eigh of the accumulated sums (float64)."""

from __future__ import annotations

import inspect
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.optim import build_optimizer, get_optimizer
from hyperswitch.optim._schedule import piecewise
from hyperswitch.optim.shampoo import Shampoo

RTOL, ATOL = 1e-10, 1e-12
EPS = 1e-3


def _close(a, b, rtol=RTOL, atol=ATOL):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=rtol, atol=atol)


def _root(mat: np.ndarray) -> np.ndarray:
    """(mat + EPS·I)^(-1/4) by numpy's eigh."""
    d, q = np.linalg.eigh(mat + EPS * np.eye(len(mat)))
    return (q * d ** -0.25) @ q.T


def _grads(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(n)]


def _opt(params, **kw):
    base = {"lr": 0.1, "momentum": 0.0, "epsilon": EPS, "inverse_interval": 1}
    return Shampoo(params, **{**base, **kw})


@pytest.mark.parametrize("interval", [1, 3])
def test_matrix_update_equals_dense_roots(interval):
    w = nn.Parameter(torch.randn(5, 4, dtype=torch.float64))
    opt = _opt([w], inverse_interval=interval)
    ref = w.detach().numpy().copy()
    left, right = np.zeros((5, 5)), np.zeros((4, 4))
    for t, g in enumerate(_grads((5, 4), 5)):
        gn = g.numpy()
        left += gn @ gn.T
        right += gn.T @ gn
        if t % interval == 0:
            lr_root, rr_root = _root(left), _root(right)
        ref = ref - 0.1 * lr_root @ gn @ rr_root
        w.grad = g
        opt.step()
        _close(w.detach(), ref)
    _close(opt.state[w]["L"], left)
    _close(opt.state[w]["R"], right)


def test_conv_weight_is_reshaped_to_out_by_in_k_k():
    w = nn.Parameter(torch.randn(3, 2, 2, 2, dtype=torch.float64))
    opt = _opt([w])
    g = _grads((3, 2, 2, 2), 1)[0]
    w0 = w.detach().numpy().reshape(3, 8).copy()
    w.grad = g
    opt.step()
    gm = g.numpy().reshape(3, 8)
    ref = w0 - 0.1 * _root(gm @ gm.T) @ gm @ _root(gm.T @ gm)
    _close(w.detach().reshape(3, 8), ref)


def test_vector_params_get_adagrad():
    b = nn.Parameter(torch.randn(6, dtype=torch.float64))
    opt = _opt([b])
    ref, acc = b.detach().numpy().copy(), np.zeros(6)
    for g in _grads((6,), 3):
        acc += g.numpy() ** 2
        ref = ref - 0.1 * g.numpy() / np.sqrt(acc + EPS)
        b.grad = g
        opt.step()
    _close(b.detach(), ref)


def test_graft_sgd_keeps_direction_with_gradient_norm():
    w = nn.Parameter(torch.zeros(4, 3, dtype=torch.float64))
    opt = _opt([w], graft="sgd", lr=1.0)
    g = _grads((4, 3), 1)[0]
    w.grad = g
    opt.step()
    gn = g.numpy()
    d = _root(gn @ gn.T) @ gn @ _root(gn.T @ gn)
    _close(-w.detach(), d * np.linalg.norm(gn) / np.linalg.norm(d))


def test_graft_adam_uses_norm_of_bias_corrected_adam_direction():
    w = nn.Parameter(torch.zeros(4, 3, dtype=torch.float64))
    opt = _opt([w], graft="adam", lr=1.0)
    m, v, left, right = np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((4, 4)), np.zeros((3, 3))
    ref = np.zeros((4, 3))
    for t, g in enumerate(_grads((4, 3), 3), start=1):
        gn = g.numpy()
        m, v = 0.9 * m + 0.1 * gn, 0.999 * v + 0.001 * gn**2
        adam = (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        left, right = left + gn @ gn.T, right + gn.T @ gn
        d = _root(left) @ gn @ _root(right)
        ref = ref - d * np.linalg.norm(adam) / np.linalg.norm(d)
        w.grad = g
        opt.step()
        _close(w.detach(), ref)


def test_momentum_and_weight_decay_like_sgd():
    w = nn.Parameter(torch.randn(3, 3, dtype=torch.float64))
    opt = _opt([w], momentum=0.9, weight_decay=0.01)
    ref, buf = w.detach().numpy().copy(), None
    left, right = np.zeros((3, 3)), np.zeros((3, 3))
    for g in _grads((3, 3), 3):
        gn = g.numpy()
        left, right = left + gn @ gn.T, right + gn.T @ gn
        d = _root(left) @ gn @ _root(right) + 0.01 * ref
        buf = d if buf is None else 0.9 * buf + d
        ref = ref - 0.1 * buf
        w.grad = g
        opt.step()
    _close(w.detach(), ref)


@pytest.mark.parametrize("kw,msg", [
    ({"lr": -1}, "lr must be >= 0, but got -1"),
    ({"epsilon": 0}, "epsilon must be > 0, but got 0"),
    ({"inverse_interval": 0}, "inverse_interval must be an integer >= 1, but got 0"),
    ({"momentum": -0.5}, "momentum must be in [0, 1), but got -0.5"),
    ({"weight_decay": -1}, "weight_decay must be >= 0, but got -1"),
    ({"graft": "adagrad"}, "graft must be one of none, sgd, adam, but got 'adagrad'"),
    ({"kl_clip": -1.0}, "kl_clip must be null or > 0, but got -1.0"),
    ({"inverse_interval": piecewise([1, 2], [3, 4])}, "len(values) == len(boundaries) + 1"),
])
def test_constructor_validation(kw, msg):
    with pytest.raises(ValueError) as exc:
        Shampoo([nn.Parameter(torch.zeros(2, 2))], **kw)
    assert msg in str(exc.value)


def test_registry_entry():
    entry = get_optimizer("shampoo")
    assert entry.order == "second" and not entry.needs_model
    assert set(entry.defaults) == set(inspect.signature(Shampoo.__init__).parameters) - {"self", "params"}
    model = nn.Linear(3, 2)
    assert isinstance(build_optimizer({"name": "shampoo", "graft": "sgd"}, model), Shampoo)
    with pytest.raises(ConfigError, match="epsilon must be > 0"):
        build_optimizer({"name": "shampoo", "epsilon": -1}, model)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _batch(s):
    g = torch.Generator().manual_seed(50 + s)
    return torch.randn(10, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (10,), generator=g)


def _step(opt, model, s):
    x, y = _batch(s)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


@pytest.mark.parametrize("graft", ["none", "adam"])
def test_state_dict_round_trip_bit_for_bit(graft):
    kw = {"lr": 0.05, "momentum": 0.9, "inverse_interval": 3, "graft": graft}
    model = _mlp()
    opt = Shampoo(model.parameters(), **kw)
    for s in range(7):
        _step(opt, model, s)
    buf = io.BytesIO()
    torch.save({"m": model.state_dict(), "o": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    model2 = _mlp(seed=4)
    model2.load_state_dict(ckpt["m"])
    opt2 = Shampoo(model2.parameters(), **kw)
    opt2.load_state_dict(ckpt["o"])
    for s in range(7, 12):
        _step(opt, model, s)
        _step(opt2, model2, s)
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


def test_precondition_grads_freeze_release():
    model = _mlp()
    opt = Shampoo(model.parameters(), lr=0.1, momentum=0.0, inverse_interval=100)
    for s in range(2):
        _step(opt, model, s)
    w = model[0].weight
    snap = {k: v.clone() for k, v in opt.state[w].items()}
    x, y = _batch(3)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    d = opt.precondition_grads()
    for k, v in snap.items():
        assert torch.equal(opt.state[w][k], v)
    torch.testing.assert_close(d[w], opt.state[w]["L_root"] @ w.grad @ opt.state[w]["R_root"])
    opt.freeze()
    w0 = w.detach().clone()
    opt.step()  # frozen: statistics unchanged, so the step is exactly -lr * d
    torch.testing.assert_close(w.detach(), w0 - 0.1 * d[w])
    assert torch.equal(opt.state[w]["L"], snap["L"])
    full = opt.state_bytes()
    opt.release()
    assert opt.state_bytes() == 0 < full  # no momentum buffers (momentum 0)
    g = w.grad.clone()
    w0 = w.detach().clone()
    opt.step()
    torch.testing.assert_close(w.detach(), w0 - 0.1 * g)


def test_failed_root_warns_instead_of_raising():
    w = nn.Parameter(torch.randn(3, 3, dtype=torch.float64))
    opt = _opt([w])
    w.grad = torch.ones(3, 3, dtype=torch.float64)
    opt.step()
    root = opt.state[w]["L_root"].clone()
    w.grad = torch.full((3, 3), float("nan"), dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="keeping the previous roots"):
        opt.step()
    assert torch.equal(opt.state[w]["L_root"], root)


@pytest.mark.parametrize("kappa", [1e-4, 1e4])
@pytest.mark.parametrize("graft", ["none", "sgd"])
def test_kl_clip_scales_every_direction_by_closed_form(kappa, graft):
    lr = 0.1
    w = nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    b = nn.Parameter(torch.randn(4, dtype=torch.float64))
    opt = _opt([w, b], lr=lr, graft=graft, kl_clip=kappa, momentum=0.9)
    gw, gb = _grads((4, 3), 1)[0], _grads((4,), 1, seed=1)[0]
    w0, b0 = w.detach().numpy().copy(), b.detach().numpy().copy()
    w.grad, b.grad = gw, gb
    opt.step()
    gwn, gbn = gw.numpy(), gb.numpy()
    dw = _root(gwn @ gwn.T) @ gwn @ _root(gwn.T @ gwn)
    db = gbn / np.sqrt(gbn ** 2 + EPS)
    if graft == "sgd":
        dw, db = dw * np.linalg.norm(gwn) / np.linalg.norm(dw), db * np.linalg.norm(gbn) / np.linalg.norm(db)
    nu = min(1.0, np.sqrt(kappa / (lr ** 2 * ((gwn * dw).sum() + (gbn * db).sum()))))
    assert (nu < 1) == (kappa < 1) and opt.kl_scale == pytest.approx(nu, rel=1e-12)
    _close(w.detach(), w0 - lr * nu * dw)  # the first momentum buffer is the clipped direction itself
    _close(b.detach(), b0 - lr * nu * db)
    _close(opt.precondition_grads()[w], dw)  # the switching API's direction is not clipped
