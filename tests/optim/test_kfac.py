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
        params[inverse + "_d"] = list(opt.precondition_grads().values())
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
    accepted = set(inspect.signature(KFAC.__init__).parameters) - {"self", "params", "model", "process_group"}
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
