"""K-FAC / FOOF against dense references computed here by hand (float64).

References never call the optimizer's code paths: per-sample output gradients come from explicit formulas
(softmax − one-hot for cross-entropy, ``out − target`` for a squared error), Conv2d patches from explicit
loops over output positions, and preconditioned gradients from dense Kronecker products / inverses.
"""

from __future__ import annotations

import gc
import inspect
import io
import math
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.optim import build_optimizer, get_optimizer
from hyperswitch.optim._schedule import piecewise
from hyperswitch.optim.kfac import FOOF, KFAC

RTOL, ATOL = 1e-10, 1e-12
DAMP = 0.05


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = RTOL, atol: float = ATOL) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# -- single Linear: dense references ---------------------------------------------------------------
def _linear(bias: bool, seed: int = 0, n: int = 16, din: int = 5, dout: int = 3):
    torch.manual_seed(seed)
    lin = nn.Linear(din, dout, bias=bias).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, din, generator=g, dtype=torch.float64)
    y = torch.randint(0, dout, (n,), generator=g)
    return lin, x, y


def _dense_linear(lin: nn.Linear, x: torch.Tensor, y: torch.Tensor):
    """A = E[a aᵀ], G = E[δ δᵀ] (δ_n = ∂l_n/∂z_n = softmax − onehot), M = [∇W | ∇b] of the mean loss."""
    w = lin.weight.detach()
    z = x @ w.t() + (lin.bias.detach() if lin.bias is not None else 0.0)
    delta = torch.softmax(z, dim=1) - F.one_hot(y, z.shape[1]).double()
    a = x if lin.bias is None else torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    n = len(x)
    a_f = sum(torch.outer(r, r) for r in a) / n
    g_f = sum(torch.outer(r, r) for r in delta) / n
    m = sum(torch.outer(d, r) for d, r in zip(delta, a, strict=True)) / n
    return a_f, g_f, m


def _step(opt, model, x, y):
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def _pmat(lin: nn.Linear, d: dict) -> torch.Tensor:
    """The per-parameter directions of a Linear as ``[dW | db]``."""
    m = d[lin.weight]
    return m if lin.bias is None else torch.cat([m, d[lin.bias][:, None]], dim=1)


def _damped(f: torch.Tensor) -> torch.Tensor:
    return f + math.sqrt(DAMP) * torch.eye(len(f), dtype=f.dtype)


def _kfac(model, **kw):
    base = {"lr": 0.0, "momentum": 0.0, "damping": DAMP, "inverse_interval": 1}
    return KFAC(model.parameters(), model, **{**base, **kw})


@pytest.mark.parametrize("bias", [True, False])
def test_linear_factors_equal_dense_expectations(bias):
    lin, x, y = _linear(bias)
    opt = _kfac(lin, factor_decay=0.9)
    a1, g1, _ = _dense_linear(lin, x, y)
    _step(opt, lin, x, y)
    st = opt.state[lin.weight]
    _close(st["A"], a1)
    _close(st["G"], g1)
    # second batch: running average with factor_decay (lr=0 so the weights do not move)
    _, x2, y2 = _linear(bias, seed=5)
    a2, g2, _ = _dense_linear(lin, x2, y2)
    _step(opt, lin, x2, y2)
    _close(st["A"], 0.9 * a1 + 0.1 * a2)
    _close(st["G"], 0.9 * g1 + 0.1 * g2)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("inverse", ["eigen", "cholesky"])
def test_linear_preconditioned_grad_equals_kronecker_solve(bias, inverse):
    lin, x, y = _linear(bias)
    opt = _kfac(lin, inverse=inverse)
    a_f, g_f, m = _dense_linear(lin, x, y)
    _step(opt, lin, x, y)
    # row-major vec(G⁻¹ M A⁻¹) = (G ⊗ A)⁻¹ vec(M) for symmetric A
    ref = torch.linalg.solve(torch.kron(_damped(g_f), _damped(a_f)), m.reshape(-1)).reshape(m.shape)
    _close(_pmat(lin, opt.precondition_grads()), ref)


def test_linear_step_applies_lr_times_direction():
    lin, x, y = _linear(True)
    opt = _kfac(lin, lr=0.3)
    a_f, g_f, m = _dense_linear(lin, x, y)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    _step(opt, lin, x, y)
    ref = torch.linalg.solve(torch.kron(_damped(g_f), _damped(a_f)), m.reshape(-1)).reshape(m.shape)
    _close(lin.weight.detach(), w0 - 0.3 * ref[:, :-1])
    _close(lin.bias.detach(), b0 - 0.3 * ref[:, -1])


def _mlp(seed: int = 0, inplace: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=inplace), nn.Linear(8, 8, bias=False),
                         nn.ReLU(inplace=inplace), nn.Linear(8, 4)).double()


def _batch(seed: int, n: int = 12, din: int = 6, classes: int = 4):
    g = torch.Generator().manual_seed(100 + seed)
    return torch.randn(n, din, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def test_cholesky_equals_eigen_to_roundoff():
    params = {}
    for inverse in ("eigen", "cholesky"):
        model = _mlp()
        opt = _kfac(model, inverse=inverse, lr=0.1, momentum=0.9, inverse_interval=2)
        for s in range(5):
            _step(opt, model, *_batch(s))
        params[inverse] = [p.detach().clone() for p in model.parameters()]
        x, y = _batch(9)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        params[inverse + "_d"] = list(opt.raw_directions().values())
    for a, b in zip(params["eigen"] + params["eigen_d"], params["cholesky"] + params["cholesky_d"],
                    strict=True):
        _close(a, b)


@pytest.mark.parametrize("bias", [True, False])
def test_triangular_equals_dense_inverse_cholesky_factors(bias):
    lin, x, y = _linear(bias)
    opt = _kfac(lin, inverse="triangular")
    a_f, g_f, m = _dense_linear(lin, x, y)
    _step(opt, lin, x, y)
    x_inv = torch.linalg.inv(torch.linalg.cholesky(_damped(g_f)))
    y_inv = torch.linalg.inv(torch.linalg.cholesky(_damped(a_f)))
    _close(_pmat(lin, opt.precondition_grads()), x_inv @ m @ y_inv.t())


@pytest.mark.parametrize("inverse", ["eigen", "cholesky", "triangular"])
def test_foof_equals_grad_times_damped_a_inverse(inverse):
    # FOOF damping choice: M (A + √damping·I)⁻¹ (triangular: M Y⁻ᵀ with A + √damping·I = Y Yᵀ)
    lin, x, y = _linear(True)
    opt = FOOF(lin.parameters(), lin, lr=0.0, momentum=0.0, damping=DAMP, inverse_interval=1, inverse=inverse)
    a_f, _, m = _dense_linear(lin, x, y)
    _step(opt, lin, x, y)
    if inverse == "triangular":
        ref = m @ torch.linalg.inv(torch.linalg.cholesky(_damped(a_f))).t()
    else:
        ref = m @ torch.linalg.inv(_damped(a_f))
    _close(_pmat(lin, opt.precondition_grads()), ref)
    assert "G" not in opt.state[lin.weight]


# -- Conv2d: explicit patch loops ------------------------------------------------------------------
def _patches_loop(x, k, stride, padding, dilation, pad_mode):
    n, c, h, w = x.shape
    if pad_mode == "zeros":
        xp = torch.zeros(n, c, h + 2 * padding, w + 2 * padding, dtype=x.dtype)
        xp[:, :, padding:padding + h, padding:padding + w] = x
    else:
        xp = F.pad(x, (padding,) * 4, mode=pad_mode)
    span = dilation * (k - 1) + 1
    ho = (xp.shape[2] - span) // stride + 1
    wo = (xp.shape[3] - span) // stride + 1
    rows = []
    for s in range(n):
        for i in range(ho):
            for j in range(wo):
                r0, c0 = i * stride, j * stride
                rows.append(xp[s, :, r0:r0 + span:dilation, c0:c0 + span:dilation].reshape(-1))
    return torch.stack(rows)


CONV_CASES = [
    # (stride, padding, dilation, bias, padding_mode, padding argument)
    (2, 1, 1, True, "zeros", 1),
    (1, 2, 2, False, "zeros", 2),
    (1, 1, 1, True, "reflect", "same"),
    (3, 0, 1, True, "zeros", "valid"),
]


@pytest.mark.parametrize("stride,pad,dil,bias,mode,pad_arg", CONV_CASES)
def test_conv2d_factors_equal_explicit_patches(stride, pad, dil, bias, mode, pad_arg):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, stride=stride, padding=pad_arg, dilation=dil, bias=bias,
                     padding_mode=mode).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 7, 7, generator=g, dtype=torch.float64)
    opt = _kfac(conv)
    out = conv(x)
    target = torch.randn(out.shape, generator=g, dtype=torch.float64)
    opt.zero_grad()
    (0.5 * ((out - target) ** 2).sum() / len(x)).backward()  # mean over samples of per-sample sums
    opt.step()
    a = _patches_loop(x, 3, stride, pad, dil, mode)
    if bias:
        a = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], dim=1)
    delta = (out - target).detach()  # per-sample ∂l_n/∂out_n, one row per (sample, position)
    d_rows = torch.stack([delta[s, :, i, j] for s in range(delta.shape[0])
                          for i in range(delta.shape[2]) for j in range(delta.shape[3])])
    assert len(d_rows) == len(a)
    a_ref = sum(torch.outer(r, r) for r in a) / len(a)
    g_ref = sum(torch.outer(r, r) for r in d_rows) / len(d_rows)
    st = opt.state[conv.weight]
    _close(st["A"], a_ref)
    _close(st["G"], g_ref)
    # and the direction: (G ⊗ A)⁻¹ vec([∇W | ∇b]) with the gradient from the explicit patches
    m = sum(torch.outer(d, r) for d, r in zip(d_rows, a, strict=True)) / len(x)
    ref = torch.linalg.solve(torch.kron(_damped(g_ref), _damped(a_ref)), m.reshape(-1)).reshape(m.shape)
    got = opt.precondition_grads()
    pm = got[conv.weight].reshape(4, -1)
    if bias:
        pm = torch.cat([pm, got[conv.bias][:, None]], dim=1)
    _close(pm, ref)


def test_grouped_conv_is_skipped_with_warning():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(1, 4, 5, 5))
    with pytest.warns(UserWarning, match="groups=2"):
        opt = KFAC(model.parameters(), model)
    assert [la.kind for la in opt.layers] == ["linear"]
    assert any("groups=2" in s for s in opt.skipped)


# -- hooks -------------------------------------------------------------------------------------------
def test_inplace_relu_does_not_corrupt_factors():
    x, y = _batch(0)
    res = []
    for inplace in (False, True):
        model = _mlp(inplace=inplace)
        opt = _kfac(model, lr=0.1)
        _step(opt, model, x, y)
        res.append([t.clone() for la in opt.layers for t in (opt.state[la.weight]["A"],
                                                                opt.state[la.weight]["G"])])
        res[-1] += [p.detach().clone() for p in model.parameters()]
    for a, b in zip(*res, strict=True):
        assert torch.equal(a, b)
    # and the second layer's A is E[relu(h) relu(h)ᵀ] of the true post-activation
    model = _mlp()
    h = torch.relu(model[0](x)).detach()
    opt = _kfac(model)
    _step(opt, model, x, y)
    _close(opt.state[model[2].weight]["A"], h.t() @ h / len(h))


def test_no_grad_and_eval_forwards_are_not_captured():
    model = _mlp()
    opt = _kfac(model)
    with torch.no_grad():
        model(_batch(0)[0])
    model.eval()
    model(_batch(0)[0])
    model.train()
    assert all(la.a_count == 0 for la in opt.layers)


def test_unsupported_params_get_sgd_update():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 2)).double()
    opt = KFAC(model.parameters(), model, lr=0.5, momentum=0.0)
    ln = model[1]
    w0 = ln.weight.detach().clone()
    x = torch.randn(5, 3, dtype=torch.float64)
    opt.zero_grad()
    F.cross_entropy(model(x), torch.tensor([0, 1, 0, 1, 1])).backward()
    g = ln.weight.grad.clone()
    opt.step()
    _close(ln.weight.detach(), w0 - 0.5 * g)


# -- intervals and schedules -------------------------------------------------------------------------
def _run(opt, model, steps):
    for s in range(steps):
        _step(opt, model, *_batch(s))


def test_factor_and_inverse_intervals_counted():
    model = _mlp()
    opt = _kfac(model, factor_interval=3, inverse_interval=4)
    _run(opt, model, 12)
    assert (opt.factor_updates, opt.last_factor_step) == (4, 9)  # steps 0, 3, 6, 9
    assert (opt.inverse_updates, opt.last_inverse_step) == (3, 8)  # steps 0, 4, 8


def test_factor_interval_uses_only_captured_batches():
    model = _mlp()
    opt = _kfac(model, factor_interval=2, factor_decay=0.5)
    _run(opt, model, 3)  # lr 0: weights fixed; batches 0 and 2 are captured
    first = model[0]
    a = [torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1) for x in (_batch(0)[0], _batch(2)[0])]
    ref = 0.5 * (a[0].t() @ a[0] / len(a[0])) + 0.5 * (a[1].t() @ a[1] / len(a[1]))
    _close(opt.state[first.weight]["A"], ref)


def test_cached_inverse_is_reused_between_updates():
    model = _mlp()
    opt = _kfac(model, inverse_interval=3)
    _run(opt, model, 1)
    cache = opt.state[model[0].weight]["LA"].clone()
    _run(opt, model, 2)
    assert torch.equal(opt.state[model[0].weight]["LA"], cache)
    _step(opt, model, *_batch(7))
    assert not torch.equal(opt.state[model[0].weight]["LA"], cache)


@pytest.mark.parametrize("interval", [lambda s: 1 if s < 5 else 3, piecewise([1, 3], [5])])
def test_inverse_interval_schedule(interval):
    model = _mlp()
    opt = _kfac(model, inverse_interval=interval)
    _run(opt, model, 12)
    assert opt.inverse_updates == 7  # steps 0, 1, 2, 3, 4, 7, 10


def test_factor_interval_and_damping_schedules():
    model = _mlp()
    opt = _kfac(model, factor_interval=piecewise([1, 4], [3]), damping=lambda s: 0.1 / (1 + s))
    _run(opt, model, 10)
    assert opt.factor_updates == 4  # steps 0, 1, 2 (interval 1), then 6 (interval 4 from step 3)
    st = opt.state[model[0].weight]
    eye = torch.eye(len(st["A"]), dtype=torch.float64)
    _close(st["LA"] @ st["LA"].t(), st["A"] + math.sqrt(0.1 / 10) * eye)  # damping at step 9


def test_lr_schedule_and_property():
    model = _mlp()
    opt = _kfac(model, lr={"schedule": "piecewise", "values": [0.1, 0.01], "boundaries": [2]})
    assert opt.lr == 0.1
    _run(opt, model, 2)
    assert opt.lr == 0.01
    opt.lr = 0.5
    assert opt.param_groups[0]["lr"] == 0.5


# -- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,msg", [
    ({"lr": -1}, "lr must be >= 0, but got -1"),
    ({"damping": -1}, "damping must be > 0, but got -1"),
    ({"damping": 0}, "damping must be > 0, but got 0"),
    ({"factor_decay": 1.0}, "factor_decay must be in [0, 1), but got 1.0"),
    ({"factor_interval": 0}, "factor_interval must be an integer >= 1, but got 0"),
    ({"inverse_interval": 2.5}, "inverse_interval must be an integer >= 1, but got 2.5"),
    ({"momentum": 1.0}, "momentum must be in [0, 1), but got 1.0"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0, but got -0.1"),
    ({"inverse": "lu"}, "inverse must be one of eigen, cholesky, triangular, but got 'lu'"),
    ({"variant": "ekfac"}, "variant must be one of kfac, foof, but got 'ekfac'"),
    ({"damping": float("nan")}, "damping must be > 0, but got nan"),
    ({"lr": True}, "lr must be >= 0, but got True"),
    ({"damping": lambda s: -1.0}, "damping(step=0) must be > 0, but got -1.0"),
    ({"inverse_interval": {"schedule": "cosine"}}, "inverse_interval schedule must be one of piecewise"),
    ({"inverse_interval": piecewise([1, 10], [])}, "len(values) == len(boundaries) + 1"),
    ({"inverse_interval": piecewise([1, 10, 5], [5, 5])}, "strictly increasing integers >= 1"),
    ({"inverse_interval": piecewise([1, 0], [5])}, "inverse_interval must be an integer >= 1, but got 0"),
    ({"lr": {"schedule": "piecewise", "values": [0.1], "step": 3}}, "keys must be schedule, values"),
])
def test_constructor_validation(kw, msg):
    model = _mlp()
    with pytest.raises(ValueError) as exc:
        KFAC(model.parameters(), model, **kw)
    assert msg in str(exc.value)


def test_schedule_value_checked_when_used():
    model = _mlp()
    opt = _kfac(model, damping=lambda s: 0.1 if s < 1 else -2.0, inverse_interval=1)
    _run(opt, model, 1)
    with pytest.raises(ValueError, match=r"damping\(step=1\) must be > 0, but got -2.0"):
        _run(opt, model, 1)


def test_registry_entries():
    kfac, foof = get_optimizer("kfac"), get_optimizer("foof")
    assert kfac.order == foof.order == "second" and kfac.needs_model and foof.needs_model
    not_hparams = {"self", "params", "model", "loss_fn", "process_group"}  # loss_fn: passed by the registry
    accepted = set(inspect.signature(KFAC.__init__).parameters) - not_hparams
    assert set(kfac.defaults) == accepted
    assert set(foof.defaults) == accepted - {"variant"}
    model = _mlp()
    opt = build_optimizer({"name": "foof", "inverse": "eigen"}, model)
    assert isinstance(opt, FOOF) and opt.variant == "foof" and opt.inverse == "eigen"
    with pytest.raises(ConfigError, match="damping must be > 0"):
        build_optimizer({"name": "kfac", "damping": 0}, model)
    with pytest.raises(ValueError, match="FOOF fixes variant"):
        FOOF(model.parameters(), model, variant="kfac")


# -- state_dict, switching API -------------------------------------------------------------------------
@pytest.mark.parametrize("inverse", ["eigen", "cholesky", "triangular"])
def test_state_dict_round_trip_bit_for_bit(inverse):
    kw = {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3, "inverse": inverse, "factor_interval": 2,
          "inverse_interval": piecewise([2, 3], [4])}
    model = _mlp()
    opt = KFAC(model.parameters(), model, **kw)
    _run(opt, model, 7)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    model2 = _mlp(seed=3)
    model2.load_state_dict(ckpt["model"])
    opt2 = KFAC(model2.parameters(), model2, **kw)
    opt2.load_state_dict(ckpt["opt"])
    for s in range(7, 12):
        _step(opt, model, *_batch(s))
        _step(opt2, model2, *_batch(s))
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
    assert (opt.steps, opt.factor_updates, opt.inverse_updates) == (opt2.steps, opt2.factor_updates,
                                                                     opt2.inverse_updates)


def test_precondition_grads_uses_cache_and_updates_nothing():
    model = _mlp()
    opt = _kfac(model, lr=0.2, inverse_interval=100)
    _run(opt, model, 2)
    before = {k: v.clone() for k, v in opt.state[model[0].weight].items()}
    counters = (opt.steps, opt.factor_updates, opt.inverse_updates)
    x, y = _batch(5)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    d = opt.precondition_grads()
    assert set(d) == set(model.parameters())
    for k, v in before.items():
        assert torch.equal(opt.state[model[0].weight][k], v)
    assert counters == (opt.steps, opt.factor_updates, opt.inverse_updates)
    # the same direction a step takes when the cache is not refreshed (factors do change, caches do not)
    w0 = [p.detach().clone() for p in model.parameters()]
    opt.step()
    for p, p0 in zip(model.parameters(), w0, strict=True):
        _close(p.detach(), p0 - 0.2 * d[p])


def test_precondition_grads_before_any_step_is_the_gradient():
    model = _mlp()
    opt = _kfac(model)
    x, y = _batch(0)
    F.cross_entropy(model(x), y).backward()
    for p, d in opt.precondition_grads().items():
        assert torch.equal(d, p.grad)


def test_freeze_stops_factor_and_inverse_updates():
    model = _mlp()
    opt = _kfac(model, lr=0.1)
    _run(opt, model, 2)
    opt.freeze()
    snap = {k: v.clone() for k, v in opt.state[model[2].weight].items()}
    _run(opt, model, 3)
    assert (opt.factor_updates, opt.inverse_updates) == (2, 2)
    assert all(la.a_count == 0 and la.g_count == 0 for la in opt.layers)
    for k, v in snap.items():
        assert torch.equal(opt.state[model[2].weight][k], v)


def test_release_frees_state_and_removes_hooks():
    model = _mlp()
    opt = _kfac(model, lr=0.1, momentum=0.9)
    _run(opt, model, 3)
    full = opt.state_bytes()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert full > 2 * param_bytes
    opt.release()
    assert opt.state_bytes() == param_bytes  # momentum buffers only
    assert all(not m._forward_hooks for m in model.modules())
    # later steps are SGD with momentum
    x, y = _batch(8)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    w0 = [p.detach().clone() for p in model.parameters()]
    bufs = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    opt.step()
    for p, p0, b in zip(model.parameters(), w0, bufs, strict=True):
        _close(p.detach(), p0 - 0.1 * (0.9 * b + p.grad))
    # a released checkpoint loads into a fresh optimizer
    sd = opt.state_dict()
    opt2 = _kfac(model, lr=0.1, momentum=0.9)
    opt2.load_state_dict(sd)
    assert opt2.released and not opt2.layers


def test_failed_decomposition_warns_instead_of_raising():
    model = _mlp()
    opt = _kfac(model, inverse="eigen")
    _run(opt, model, 1)
    cache = opt.state[model[0].weight]["QA"].clone()
    x, y = _batch(1)
    x[0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="keeping its previous preconditioner"):
        _step(opt, model, x, y)
    assert torch.equal(opt.state[model[0].weight]["QA"], cache)


def test_dropped_optimizer_is_collected_and_its_hooks_are_inert():
    model = _mlp()
    opt = _kfac(model)
    _run(opt, model, 1)
    ref = weakref.ref(opt)
    del opt
    gc.collect()
    assert ref() is None
    x, y = _batch(0)
    F.cross_entropy(model(x), y).backward()  # the leftover hooks do nothing


def test_deepcopy_of_model_does_not_carry_the_optimizer():
    import copy

    from hyperswitch.optim import build_optimizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    for name in ("kfac", "foof"):
        opt = build_optimizer({"name": name}, model)
        x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        clone = copy.deepcopy(model)
        nn.functional.cross_entropy(clone(x), y).backward()  # must not reach the optimizer
        before = opt.state_bytes()
        nn.functional.cross_entropy(clone(x), y).backward()
        assert opt.state_bytes() == before
        opt.release()


# -- step control: KL clip, π-correction, quadratic-model rescaling, Levenberg-Marquardt damping ------------
# References: dense float64 Jacobians by reverse mode (torch.autograd.functional.jacobian) of a hand-written
# forward over a flat parameter vector, output-space Fisher matrices from their closed forms, 2×2 solves by
# numpy; never the optimizer's JVP / double-backward path.
def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _mlp_forward(model: nn.Module, theta: torch.Tensor, x: torch.Tensor, act=torch.relu) -> torch.Tensor:
    """The forward of ``_mlp`` (or ``_sig_mlp``) with its parameters taken from the flat ``theta``."""
    i, out = 0, x
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for k, lin in enumerate(linears):
        n = lin.weight.numel()
        w = theta[i:i + n].reshape(lin.weight.shape)
        i += n
        out = out @ w.t()
        if lin.bias is not None:
            out = out + theta[i:i + lin.bias.numel()]
            i += lin.bias.numel()
        if k + 1 < len(linears):
            out = act(out)
    return out


def _dense_fisher_ce(model, theta, x, y):
    """``(F, g, L)``: F = (1/N) Σ J_nᵀ (diag p_n − p_n p_nᵀ) J_n, the gradient and the loss of the mean
    cross-entropy at ``theta``."""
    jac = torch.autograd.functional.jacobian(lambda t: _mlp_forward(model, t, x), theta)  # (N, C, P)
    z = _mlp_forward(model, theta, x)
    p = torch.softmax(z, 1)
    n = len(x)
    fisher = sum(j.t() @ (torch.diag(q) - torch.outer(q, q)) @ j for j, q in zip(jac, p, strict=True)) / n
    r = p - F.one_hot(y, z.shape[1]).double()
    grad = sum(j.t() @ rn for j, rn in zip(jac, r, strict=True)) / n
    return fisher, grad, float(F.cross_entropy(z, y))


def _bce_sum(z, t):
    return F.binary_cross_entropy_with_logits(z, t, reduction="sum") / z.shape[0]


def _sig_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 5)).double()


def _vec_dict(model, v):
    out, i = {}, 0
    for name, p in model.named_parameters():
        out[name] = v[i:i + p.numel()].reshape(p.shape)
        i += p.numel()
    return out


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_ggn_gram_equals_dense_fisher(loss):
    from hyperswitch.optim.kfac import ggn_gram

    g = torch.Generator().manual_seed(5)
    if loss == "ce":
        model, (x, y) = _mlp(), _batch(0)
        fisher = _dense_fisher_ce(model, _flat(model), x, y)[0]
        loss_fn = F.cross_entropy
    else:  # sigmoid outputs, cross-entropy summed over outputs, mean over images (the curves loss)
        model = _sig_mlp()
        x = torch.rand(9, 5, generator=g, dtype=torch.float64)
        y = x
        theta = _flat(model)
        jac = torch.autograd.functional.jacobian(lambda t: _mlp_forward(model, t, x, torch.sigmoid), theta)
        s = torch.sigmoid(_mlp_forward(model, theta, x, torch.sigmoid))
        fisher = sum(j.t() @ torch.diag(q * (1 - q)) @ j for j, q in zip(jac, s, strict=True)) / len(x)
        loss_fn = _bce_sum
    vs = [torch.randn(len(fisher), generator=g, dtype=torch.float64) for _ in range(2)]
    primals = {n: p.detach() for n, p in model.named_parameters()}
    got = ggn_gram(model, loss_fn, x, y, primals, [_vec_dict(model, v) for v in vs])
    ref = torch.tensor([[float(a @ fisher @ b) for b in vs] for a in vs], dtype=torch.float64)
    _close(got, ref, rtol=1e-9, atol=1e-12)


class _TinyAttention(nn.Module):
    """Embedding, one causal self-attention head by ``F.scaled_dot_product_attention`` (``fused``) or written out
    (softmax(QKᵀ/√d + mask) V), and a read-out: logits ``(N, T, V)``."""

    def __init__(self, v: int = 5, d: int = 4, fused: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.qkv, self.out, self.fused = nn.Embedding(v, d), nn.Linear(d, 3 * d), nn.Linear(d, v), fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (a.unsqueeze(1) for a in self.qkv(self.emb(x)).chunk(3, dim=-1))  # (N, heads 1, T, d)
        if self.fused:
            h = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            t = x.shape[1]
            mask = torch.full((t, t), float("-inf"), dtype=q.dtype).triu(1)
            h = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5 + mask, dim=-1) @ v
        return self.out(h.squeeze(1))


def test_ggn_gram_through_fused_attention_equals_dense_fisher():
    """The JVPs of step control's quadratic model run through ``scaled_dot_product_attention`` (whose fused CPU
    kernel has no forward-mode AD): equal to the dense ``Jᵀ H J`` of the written-out attention."""
    from hyperswitch.optim.kfac import ggn_gram
    from hyperswitch.workloads.char_lm import sequence_cross_entropy

    model, plain = _TinyAttention().double(), _TinyAttention(fused=False).double()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randint(0, 5, (3, 6), generator=g), torch.randint(0, 5, (3, 6), generator=g)
    names = [n for n, _ in plain.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in plain.parameters()])

    def logits(t: torch.Tensor) -> torch.Tensor:  # flat parameters -> (N·T, V)
        ps, i = {}, 0
        for n, p in plain.named_parameters():
            ps[n] = t[i:i + p.numel()].reshape(p.shape)
            i += p.numel()
        return torch.func.functional_call(plain, ps, (x,)).reshape(-1, 5)

    jac = torch.autograd.functional.jacobian(logits, theta)  # (N·T, V, P)
    prob = torch.softmax(logits(theta), -1)
    fisher = sum(j.t() @ (torch.diag(q) - torch.outer(q, q)) @ j for j, q in zip(jac, prob, strict=True)) / len(prob)
    vs = [torch.randn(len(theta), generator=g, dtype=torch.float64) for _ in range(2)]
    primals = {n: p.detach() for n, p in model.named_parameters()}
    assert list(primals) == names
    got = ggn_gram(model, sequence_cross_entropy, x, y, primals, [_vec_dict(model, v) for v in vs])
    ref = torch.tensor([[float(a @ fisher @ b) for b in vs] for a in vs], dtype=torch.float64)
    _close(got, ref, rtol=1e-9, atol=1e-12)


def test_quadratic_minimiser_closed_form():
    from hyperswitch.optim.kfac import quadratic_minimiser

    c = torch.tensor([[4.0, 1.5], [1.5, 2.0]], dtype=torch.float64)
    b = torch.tensor([-3.0, 0.5], dtype=torch.float64)
    det = 4.0 * 2.0 - 1.5 * 1.5  # Cramer's rule for C x = −b
    ref = [(3.0 * 2.0 - (-0.5) * 1.5) / det, (4.0 * (-0.5) - 1.5 * 3.0) / det]
    _close(quadratic_minimiser(c, b), torch.tensor(ref, dtype=torch.float64))
    _close(quadratic_minimiser(c[:1, :1], b[:1]), torch.tensor([0.75], dtype=torch.float64))
    parallel = torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64)  # Δ ∥ δ₀: α alone
    _close(quadratic_minimiser(parallel, b), torch.tensor([3.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("rho,factor", [(0.9, 0.95 ** 5), (0.76, 0.95 ** 5), (0.75, 1.0), (0.5, 1.0),
                                        (0.25, 1.0), (0.2, 0.95 ** -5), (-3.0, 0.95 ** -5),
                                        (float("nan"), 0.95 ** -5)])
def test_lm_damping_rule(rho, factor):
    from hyperswitch.optim.kfac import lm_damping

    assert lm_damping(0.3, rho, 5) == pytest.approx(0.3 * factor, rel=1e-14)
    assert lm_damping(0.3, 0.9, 1) == pytest.approx(0.3 * 0.95, rel=1e-14)
    assert lm_damping(1e-8, 0.9, 1) == 1e-8 and lm_damping(1e8, 0.0, 1) == 1e8  # the bounds


@pytest.mark.parametrize("inverse", ["eigen", "cholesky"])
def test_pi_correction_splits_damping_by_trace_ratio(inverse):
    lin, x, y = _linear(True)
    opt = _kfac(lin, inverse=inverse, pi_correction=True)
    a_f, g_f, m = _dense_linear(lin, x, y)
    _step(opt, lin, x, y)
    pi = math.sqrt((float(torch.trace(a_f)) / len(a_f)) / (float(torch.trace(g_f)) / len(g_f)))
    root = math.sqrt(DAMP)
    da = a_f + pi * root * torch.eye(len(a_f), dtype=a_f.dtype)
    dg = g_f + root / pi * torch.eye(len(g_f), dtype=g_f.dtype)
    ref = torch.linalg.solve(torch.kron(dg, da), m.reshape(-1)).reshape(m.shape)
    _close(_pmat(lin, opt.precondition_grads()), ref)


def _ln_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 4)).double()


@pytest.mark.parametrize("kappa", [1e-5, 1e3])
def test_kl_clip_scales_preconditioned_directions_by_closed_form(kappa):
    lr = 0.5
    model, twin = _ln_model(), _ln_model()
    opt = _kfac(model, lr=lr, kl_clip=kappa)
    ref_opt = _kfac(twin, lr=0.0)
    x, y = _batch(0)
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    _step(opt, model, x, y)
    _step(ref_opt, twin, x, y)
    d = ref_opt.precondition_grads()  # lr 0: the same factors and gradient, unclipped
    kfac_params = {p for layer in ref_opt.layers for p in (layer.weight, layer.bias)}
    total = sum(lr * lr * float((p.grad * d[p]).sum()) for p in kfac_params)
    nu = min(1.0, math.sqrt(kappa / total))
    assert (nu < 1.0) == (kappa < 1.0) and opt.kl_scale == pytest.approx(nu, rel=1e-12)
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        scale = nu if q in kfac_params else 1.0  # LayerNorm: raw gradient, neither summed nor scaled
        _close(p.detach(), theta0[name] - lr * scale * d[q])


def _step_control(model, **kw):
    base = {"lr": 1.0, "momentum": 0.9, "damping": DAMP, "inverse_interval": 1, "inverse": "eigen",
            "loss_fn": F.cross_entropy}
    return KFAC(model.parameters(), model, **{**base, **kw})


def test_rescale_alpha_mu_equal_dense_two_by_two_solve():
    model = _mlp()
    opt = _step_control(model, rescale=True)
    x0, y0 = _batch(0)
    theta0 = _flat(model)
    opt.batch_step(x0, y0)
    theta1 = _flat(model)
    # step 0: α alone, α = −gᵀΔ / (Δᵀ(F + λI)Δ), μ = 0
    fisher0, g0, _ = _dense_fisher_ce(model, theta0, x0, y0)
    delta0 = -torch.cat([v.reshape(-1) for v in opt.raw_directions().values()])
    alpha0 = -float(g0 @ delta0) / float(delta0 @ fisher0 @ delta0 + DAMP * delta0 @ delta0)
    assert opt.alpha == pytest.approx(alpha0, rel=1e-9) and opt.mu == 0.0
    _close(theta1 - theta0, alpha0 * delta0, rtol=1e-9, atol=1e-12)
    # step 1: (α, μ) from the 2×2 model over (Δ, δ₀), δ₀ = θ₁ − θ₀
    x1, y1 = _batch(1)
    opt.batch_step(x1, y1)
    theta2 = _flat(model)
    fisher, g, _ = _dense_fisher_ce(model, theta1, x1, y1)
    big = -torch.cat([v.reshape(-1) for v in opt.raw_directions().values()])
    prev = theta1 - theta0
    vs = [big.numpy(), prev.numpy()]
    fd = fisher.numpy() + DAMP * np.eye(len(fisher))
    c = np.array([[a @ fd @ b for b in vs] for a in vs])
    alpha, mu = np.linalg.solve(c, -np.array([g.numpy() @ v for v in vs]))
    assert opt.alpha == pytest.approx(alpha, rel=1e-8) and opt.mu == pytest.approx(mu, rel=1e-8)
    _close(theta2 - theta1, alpha * big + mu * prev, rtol=1e-8, atol=1e-12)


def test_rescale_lr_multiplies_the_step_and_momentum_zero_drops_mu():
    models = [_mlp(), _mlp()]
    opts = [_step_control(models[0], rescale=True, momentum=0.0),
            _step_control(models[1], rescale=True, momentum=0.0, lr=0.25)]
    thetas = []
    for model, opt in zip(models, opts, strict=True):
        t0 = _flat(model)
        opt.batch_step(*_batch(0))
        t1 = _flat(model)
        opt.batch_step(*_batch(1))
        thetas.append((t0, t1, _flat(model)))
        assert opt.mu == 0.0 and "prev_update" not in opt.state[model[0].weight]
    _close(thetas[1][1] - thetas[1][0], 0.25 * (thetas[0][1] - thetas[0][0]), rtol=1e-9, atol=1e-12)


def test_precondition_grads_under_rescale_is_the_step_taken_at_lr_one():
    # The corrector's second-order direction (precondition_grads, "at lr 1") must be the step K-FAC took, not
    # the raw (F + λI)⁻¹g: with rescale the step is lr·αΔ, and α is far from 1 at a small damping.
    model = _mlp()
    opt = _step_control(model, rescale=True, momentum=0.0, lr=0.5, damping=1e-3)
    opt.batch_step(*_batch(0))
    theta0 = _flat(model)
    opt.batch_step(*_batch(1))  # gradients and the preconditioner stay those of this step
    taken = _flat(model) - theta0
    assert not 0.5 < opt.alpha < 2.0  # the case that matters: α far from 1
    direction = torch.cat([v.reshape(-1) for v in opt.precondition_grads().values()])
    _close(taken, -0.5 * direction, rtol=1e-9, atol=1e-12)
    raw = torch.cat([v.reshape(-1) for v in opt.raw_directions().values()])
    _close(direction, opt.alpha * raw, rtol=1e-12, atol=0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adaptive_damping_rho_equals_dense_quadratic_model(weight_decay):
    lr = 0.3
    model = _mlp()
    opt = _step_control(model, lr=lr, momentum=0.0, weight_decay=weight_decay, adaptive_damping=True,
                        damping_interval=1)
    x, y = _batch(0)
    theta0 = _flat(model)
    opt.batch_step(x, y)
    theta1 = _flat(model)
    fisher, g, loss0 = _dense_fisher_ce(model, theta0, x, y)
    loss1 = float(F.cross_entropy(_mlp_forward(model, theta1, x), y))
    d = theta1 - theta0
    wd = weight_decay
    h0, h1 = loss0 + 0.5 * wd * float(theta0 @ theta0), loss1 + 0.5 * wd * float(theta1 @ theta1)
    gh = g + wd * theta0
    predicted = 0.5 * float(d @ fisher @ d) + 0.5 * wd * float(d @ d) + float(gh @ d)
    rho = (h1 - h0) / predicted
    assert opt.rho == pytest.approx(rho, rel=1e-8)
    factor = 0.95 if rho > 0.75 else (1 / 0.95 if rho < 0.25 else 1.0)
    assert opt.damping == pytest.approx(DAMP * factor, rel=1e-12)


def test_adaptive_damping_every_interval_steps_and_at_the_next_inverse():
    model = _mlp()
    opt = _step_control(model, lr=0.3, momentum=0.0, adaptive_damping=True, damping_interval=3,
                        inverse_interval=2)
    seen = []
    for s in range(7):
        opt.rho = None
        opt.batch_step(*_batch(s))
        seen.append(opt.rho is not None)
    assert seen == [True, False, False, True, False, False, True]  # steps 0, 3, 6


def test_batch_step_extra_passes_capture_nothing_and_keep_buffers():
    def bn_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)).double()

    model, twin = bn_model(), bn_model()
    opt = _step_control(model, lr=0.0, rescale=True, adaptive_damping=True, damping_interval=1)
    ref = _kfac(twin, lr=0.0)
    x, y = _batch(0)
    opt.batch_step(x, y)
    _step(ref, twin, x, y)
    for la, lb in zip(opt.layers, ref.layers, strict=True):
        for key in ("A", "G"):
            _close(opt.state[la.weight][key], ref.state[lb.weight][key])
    _close(model[1].running_mean, twin[1].running_mean)
    _close(model[1].running_var, twin[1].running_var)
    assert int(model[1].num_batches_tracked) == 1


def test_step_control_protocol_and_validation():
    from hyperswitch.switching._base import optimizer_step

    model = _mlp()
    plain = build_optimizer({"name": "kfac"}, model)  # no loss function given: fine without step control
    assert getattr(plain, "batch_step", None) is None
    clipped = build_optimizer({"name": "kfac", "kl_clip": 0.01}, model)
    assert getattr(clipped, "batch_step", None) is None  # the KL clip needs no mini-batch
    opt = build_optimizer({"name": "foof", "rescale": True}, model, F.cross_entropy)
    assert callable(getattr(opt, "batch_step", None))
    x, y = _batch(0)
    loss = optimizer_step(opt, model, F.cross_entropy, x, y)
    assert opt.steps == 1 and loss == pytest.approx(float(F.cross_entropy(_mlp()(x), y)), rel=1e-12)
    with pytest.raises(RuntimeError, match="call batch_step"):
        opt.step()
    opt.release()
    opt.batch_step(x, y)  # released: plain SGD(momentum)
    with pytest.raises(ConfigError, match="loss_fn is required"):
        build_optimizer({"name": "kfac", "adaptive_damping": True}, model)
    with pytest.raises(ConfigError, match="kl_clip must be null with rescale"):
        build_optimizer({"name": "kfac", "rescale": True, "kl_clip": 0.01}, model, F.cross_entropy)


@pytest.mark.parametrize("kw,msg", [
    ({"kl_clip": 0}, "kl_clip must be null or > 0, but got 0"),
    ({"kl_clip": True}, "kl_clip must be null or > 0, but got True"),
    ({"rescale": 1}, "rescale must be true or false, but got 1"),
    ({"pi_correction": "yes"}, "pi_correction must be true or false"),
    ({"damping_interval": 0}, "damping_interval must be an integer >= 1, but got 0"),
    ({"fisher": "true"}, "fisher must be one of empirical, categorical, bernoulli, but got 'true'"),
    ({"fisher": "bernoulli", "variant": "foof"}, "fisher must be 'empirical' with variant foof"),
    ({"fisher": "bernoulli"}, "loss_fn is required with rescale, adaptive_damping or a sampled fisher"),
    ({"adaptive_damping": True, "loss_fn": F.cross_entropy, "damping": piecewise([1.0, 0.1], [5])},
     "damping must be a number with adaptive_damping"),
])
def test_step_control_validation(kw, msg):
    model = _mlp()
    with pytest.raises(ValueError) as exc:
        KFAC(model.parameters(), model, **kw)
    assert msg in str(exc.value)


def test_step_control_state_dict_round_trip_bit_for_bit():
    kw = {"rescale": True, "adaptive_damping": True, "damping_interval": 1, "pi_correction": True,
          "inverse_interval": 2}
    model = _mlp()
    opt = _step_control(model, **kw)
    for s in range(5):
        opt.batch_step(*_batch(s))
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    model2 = _mlp(seed=3)
    model2.load_state_dict(ckpt["model"])
    opt2 = _step_control(model2, **{**kw, "damping": 1.0})
    opt2.load_state_dict(ckpt["opt"])
    assert opt2.damping == opt.damping != DAMP  # the adapted λ
    for s in range(5, 9):
        opt.batch_step(*_batch(s))
        opt2.batch_step(*_batch(s))
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("fisher", ["categorical", "bernoulli"])
def test_sampled_fisher_g_is_the_sampled_targets_gradient_covariance(fisher):
    lin, x, y = _linear(True, n=64)
    if fisher == "bernoulli":
        loss_fn, y = _bce_sum, torch.rand(64, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    else:
        loss_fn = F.cross_entropy
    opt = KFAC(lin.parameters(), lin, lr=0.0, momentum=0.0, damping=DAMP, fisher=fisher, loss_fn=loss_fn)
    torch.manual_seed(11)
    loss = opt.batch_step(x, y)
    torch.manual_seed(11)  # the same draws, by the documented rule (nothing else draws before them)
    z = lin(x).detach()
    if fisher == "categorical":
        p = torch.softmax(z, 1)
        drawn = torch.multinomial(p.float(), 1)[:, 0]
        delta = p - F.one_hot(drawn, 3).double()  # ∂l_n/∂z_n at a sampled class
    else:
        s = torch.sigmoid(z)
        delta = s - torch.bernoulli(s)
    g_ref = sum(torch.outer(r, r) for r in delta) / len(x)
    _close(opt.state[lin.weight]["G"], g_ref)
    a_f, _, m = _dense_linear(lin, x, y) if fisher == "categorical" else (None, None, None)
    if a_f is not None:  # A and the gradient are the real targets' as before
        _close(opt.state[lin.weight]["A"], a_f)
        _close(_pmat(lin, {lin.weight: lin.weight.grad, lin.bias: lin.bias.grad}), m)
    assert float(loss) == pytest.approx(float(loss_fn(z, y)), rel=1e-12)


def test_categorical_draws_use_the_class_dimension_of_the_loss():
    """Sequence logits ``(N, T, V)`` (class last, ``sequence_cross_entropy``) and ``cross_entropy``'s ``(N, C, L)``
    (class at 1) both get draws shaped like the data's targets; K-FAC's sampled G equals its empirical G with the
    drawn labels given as the targets (same seed: nothing else draws before them)."""
    from hyperswitch.optim.kfac import class_dim, sample_targets
    from hyperswitch.workloads.char_lm import sequence_cross_entropy

    n, t, v = 4, 6, 5
    z = torch.randn(n, t, v, dtype=torch.float64)
    assert class_dim(sequence_cross_entropy, z, None) == -1
    assert class_dim(lambda a, b: a.sum(), z, torch.zeros(n, t, dtype=torch.long)) == -1  # inferred from targets
    assert class_dim(F.cross_entropy, z, torch.zeros(n, v, dtype=torch.long)) == 1  # (N, C, L) with L = V
    assert class_dim(F.cross_entropy, z[:, 0], torch.zeros(n, dtype=torch.long)) == 1
    assert sample_targets("categorical", z, -1).shape == (n, t)
    assert sample_targets("categorical", z, 1).shape == (n, v)
    # the draws follow softmax over the chosen dimension: frequencies of class 0 at one position
    p = torch.softmax(z, -1)[0, 0]
    torch.manual_seed(3)
    freq = torch.stack([sample_targets("categorical", z, -1)[0, 0] for _ in range(4000)]).bincount(minlength=v) / 4000
    _close(freq.double(), p, rtol=0, atol=0.03)

    def model_and_data():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Embedding(v, 7), nn.Linear(7, v)).double()
        g = torch.Generator().manual_seed(1)
        return m, torch.randint(0, v, (n, t), generator=g), torch.randint(0, v, (n, t), generator=g)

    m1, x, y = model_and_data()
    opt1 = KFAC(m1.parameters(), m1, lr=0.0, momentum=0.0, damping=DAMP, fisher="categorical",
                loss_fn=sequence_cross_entropy)
    torch.manual_seed(11)
    opt1.batch_step(x, y)
    m2, _, _ = model_and_data()
    torch.manual_seed(11)
    drawn = sample_targets("categorical", m2(x).detach(), -1)
    opt2 = KFAC(m2.parameters(), m2, lr=0.0, momentum=0.0, damping=DAMP, fisher="empirical",
                loss_fn=sequence_cross_entropy)
    sequence_cross_entropy(m2(x), drawn).backward()  # the ordinary step: G from the given targets' gradient
    opt2.step()
    lin1, lin2 = m1[1], m2[1]
    _close(opt1.state[lin1.weight]["G"], opt2.state[lin2.weight]["G"])
    _close(opt1.state[lin1.weight]["A"], opt2.state[lin2.weight]["A"])


def test_sampled_fisher_expectation_is_the_true_fisher():
    lin, x, _ = _linear(True, n=8)
    z = lin(x).detach()
    s = torch.sigmoid(z)
    true_g = sum(torch.diag(q * (1 - q)) for q in s) / len(x)
    from hyperswitch.optim.kfac import sample_targets

    torch.manual_seed(0)
    draws = torch.stack([s - sample_targets("bernoulli", z) for _ in range(20000)])  # (S, N, C)
    est = torch.einsum("snc,snd->cd", draws, draws) / (draws.shape[0] * draws.shape[1])
    _close(est, true_g, rtol=0, atol=5e-3)
