"""GeN (docs/algorithms.md#gen) on quadratics with closed-form answers, and around every registered optimizer."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.optim import build_optimizer, optimizer_names
from hyperswitch.optim import gen as gen_module
from hyperswitch.optim.gen import FITS, NOT_LINEAR_IN_LR, SEARCH_GRID, GeN

DT = torch.float64


class Point(nn.Module):
    """``model(x) = w`` (the input is ignored): the loss function alone defines L(w)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.w


def quadratic(dim: int = 6, seed: int = 0):
    """L(w) = ½ wᵀHw − bᵀw with H symmetric positive definite; returns (loss_fn, H, b, w0)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=DT)
    h = a @ a.T + 0.5 * torch.eye(dim, dtype=DT)
    b = torch.randn(dim, generator=g, dtype=DT)
    w0 = torch.randn(dim, generator=g, dtype=DT)

    def loss_fn(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * z @ h @ z - b @ z

    return loss_fn, h, b, w0


X = torch.zeros(1, dtype=DT)
Y = torch.zeros(1, dtype=DT)


class SubSGD(torch.optim.SGD):
    """SGD under another type: GeN cannot read its direction from its state, so it snapshots ``w``."""


@pytest.mark.parametrize("sgd", [torch.optim.SGD, SubSGD])
@pytest.mark.parametrize("fit", FITS)
def test_sgd_fit_is_the_closed_form_optimal_lr(fit, sgd):
    loss_fn, h, b, w0 = quadratic()
    model = Point(w0)
    base = sgd(model.parameters(), lr=0.05)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1, fit=fit)
    g = h @ w0 - b
    lr_star = float(g @ g / (g @ h @ g))
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(lr_star, rel=1e-10)
    assert gen.last_fit["accepted"] and gen.last_fit["lr_star"] == pytest.approx(lr_star, rel=1e-10)
    torch.testing.assert_close(model.w.detach(), w0 - lr_star * g, rtol=1e-10, atol=1e-12)
    assert base.param_groups[0]["lr"] == gen.lr == gen.param_groups[0]["lr"]


@pytest.mark.parametrize("fit", FITS)
def test_gamma_smooths_the_fitted_lr(fit):
    loss_fn, h, b, w0 = quadratic()
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.9, phi=1, fit=fit)
    g = h @ w0 - b
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(0.9 * 0.05 + 0.1 * float(g @ g / (g @ h @ g)), rel=1e-10)


@pytest.mark.parametrize("fit", FITS)
def test_adam_fit_uses_adams_direction_and_advances_its_state_once_per_step(fit):
    loss_fn, h, b, w0 = quadratic()
    model = Point(w0)
    shadow = Point(w0)  # an independent Adam at lr 1 gives the direction d of the first step
    ref = torch.optim.Adam(shadow.parameters(), lr=1.0)
    ref.zero_grad()
    loss_fn(shadow(X), Y).backward()
    ref.step()
    d = w0 - shadow.w.detach()
    g = h @ w0 - b
    base = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1, fit=fit)
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(float(g @ d / (d @ h @ d)), rel=1e-8)
    for k in range(2, 6):
        gen.batch_step(X, Y)
        assert int(base.state[model.w]["step"]) == k


def sgd_direction(gp, buf, momentum, dampening, nesterov):
    """torch SGD's direction written out independently: ``(d, new momentum buffer)``."""
    if momentum == 0:
        return gp, None
    buf = gp.clone() if buf is None else momentum * buf + (1 - dampening) * gp
    return (gp + momentum * buf if nesterov else buf), buf


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize(
    "hp",
    [{"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.5}, {"momentum": 0.9, "nesterov": True},
     {"weight_decay": 0.1}, {"momentum": 0.5, "weight_decay": 0.1}],
    ids=["momentum", "dampening", "nesterov", "weight_decay", "momentum_weight_decay"],
)
def test_sgd_variants_fit_the_closed_form_lr_along_their_own_direction(hp, fit):
    """``lr* = gᵀd / dᵀHd`` at every step, with ``g = ∇L`` (weight decay is not part of L) and ``d`` torch SGD's
    direction at lr 1 (momentum buffer, Nesterov, decay); read from SGD's state or from a snapshot of w."""
    loss_fn, h, b, w0 = quadratic(seed=3)
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=0.02, **hp)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1, fit=fit)
    m, damp, nest, wd = hp.get("momentum", 0.0), hp.get("dampening", 0.0), hp.get("nesterov", False), \
        hp.get("weight_decay", 0.0)
    w, buf = w0.clone(), None
    for _ in range(4):
        g = h @ w - b
        d, buf = sgd_direction(g + wd * w, buf, m, damp, nest)
        lr_star = float(g @ d / (d @ h @ d))
        gen.batch_step(X, Y)
        assert gen.lr == pytest.approx(lr_star, rel=1e-9)
        w = w - lr_star * d
        torch.testing.assert_close(model.w.detach(), w, rtol=1e-9, atol=1e-12)
        if fit == "one_sided":
            assert gen.last_fit["g_dot_d"] == pytest.approx(float(g @ d), rel=1e-12)


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize("hp", [{}, {"momentum": 0.9}], ids=["plain", "momentum"])
def test_sgd_direction_from_its_state_matches_the_snapshot_path(hp, fit):
    """torch SGD's direction read from its state (no copy of w) against a snapshot of w (SGD under another
    type), float64 MLP on random data: the same lr and parameters up to round-off (in float32 the fits'
    loss differences keep only a few digits, so the two paths' lr would part at about 1e-4)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    x, y = torch.randn(32, 8, dtype=DT), torch.randint(0, 4, (32,))
    runs = []
    for sgd in (torch.optim.SGD, SubSGD):
        model = copy.deepcopy(net)
        gen = GeN(model.parameters(), model=model, loss_fn=F.cross_entropy,
                  base=sgd(model.parameters(), lr=0.5, **hp), gamma=0.9, phi=2, fit=fit)
        for _ in range(8):
            gen.batch_step(x, y)
        runs.append((gen.lr_trace, [p.detach() for p in model.parameters()]))
    (trace_a, w_a), (trace_b, w_b) = runs
    assert len(set(trace_a)) > 1 and trace_a == pytest.approx(trace_b, rel=1e-9)
    for a, b in zip(w_a, w_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sgd", [torch.optim.SGD, SubSGD])
@pytest.mark.parametrize("fit", FITS)
def test_parameters_after_a_fit_step_are_w_minus_lr_d_within_the_documented_round_off(fit, sgd):
    """docs/algorithms.md#gen: after a fit step the parameters are ``w − lr_t·d`` within
    ``2ε·k·(|w| + 3(lr_{t−1} + lr_t)|d|)`` per element (float32, ε its machine epsilon), ``k = 1`` with d read
    from SGD's state, ``k = 1 + lr_t/lr_{t−1}`` with d recovered from a snapshot of w (the lr jumps 0.3 → ~7
    here, the worst case for that path)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    x, y = torch.randn(64, 20), torch.randint(0, 5, (64,))
    gen = GeN(model.parameters(), model=model, loss_fn=F.cross_entropy,
              base=sgd(model.parameters(), lr=0.3), gamma=0.0, phi=1, fit=fit)
    for _ in range(3):
        w = [p.detach().double().clone() for p in model.parameters()]
        lr_prev = gen.lr
        gen.batch_step(x, y)
        assert gen.last_fit["accepted"] and gen.lr != lr_prev
        eps = torch.finfo(torch.float32).eps
        k = 1.0 if sgd is torch.optim.SGD else 1.0 + gen.lr / lr_prev
        for p, w0 in zip(model.parameters(), w, strict=True):
            d = p.grad.double()
            err = (p.detach().double() - (w0 - gen.lr * d)).abs()
            assert bool((err <= 2 * eps * k * (w0.abs() + 3 * (lr_prev + gen.lr) * d.abs())).all())


@pytest.mark.parametrize("fit", FITS)
def test_random_state_is_touched_only_when_the_forward_draws(fit, monkeypatch):
    """No dropout: the fit step neither saves nor sets the generator around its extra forwards."""
    calls = []
    inner = gen_module._set_rng_state
    monkeypatch.setattr(gen_module, "_set_rng_state", lambda state: (calls.append(1), inner(state)))
    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    for dropout, expected in ((0.0, 0), (0.3, 3 if fit == "symmetric" else 2)):
        calls.clear()
        net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(dropout), nn.Linear(8, 2)) if dropout else \
            nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        gen = GeN(net.parameters(), model=net, loss_fn=F.cross_entropy,
                  base=torch.optim.SGD(net.parameters(), lr=0.1), phi=1, fit=fit)
        gen.batch_step(x, y)
        assert len(calls) == expected  # one per extra forward, one to put back the base's state


@pytest.mark.parametrize(("fit", "per_fit"), [("one_sided", 1), ("symmetric", 2)])
def test_fits_run_only_every_phi_steps(fit, per_fit):
    loss_fn, _, _, w0 = quadratic()
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.5, phi=4, fit=fit)
    for _ in range(12):
        gen.batch_step(X, Y)
    assert gen.fits == 3 and gen.extra_forwards == 3 * per_fit
    assert model.calls == 12 + 3 * per_fit
    changes = [t + 1 for t in range(1, 12) if gen.lr_trace[t] != gen.lr_trace[t - 1]]
    assert set(changes) <= {4, 8, 12} and gen.lr_trace[2] == 0.01


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize(
    ("lr_prev", "clip", "expected"), [(1e-4, 2.0, 2e-4), (50.0, 2.0, 25.0), (1e-4, 1.0, 1e-4)]
)
def test_clip_bounds_the_fitted_lr(lr_prev, clip, expected, fit):
    loss_fn, h, b, w0 = quadratic()
    g = h @ w0 - b
    lr_star = float(g @ g / (g @ h @ g))  # about 0.08: outside [lr_prev/clip, clip·lr_prev] in every case
    assert not lr_prev / clip <= lr_star <= clip * lr_prev
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=lr_prev)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1, clip=clip, fit=fit)
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sgd", [torch.optim.SGD, SubSGD])
@pytest.mark.parametrize("fit", FITS)
def test_non_convex_fit_keeps_the_lr(fit, sgd):
    model = Point(torch.ones(3, dtype=DT))
    base = sgd(model.parameters(), lr=0.1)
    gen = GeN(model.parameters(), model=model, loss_fn=lambda z, y: -0.5 * z @ z, base=base, gamma=0.0, phi=1,
              fit=fit)
    gen.batch_step(X, Y)
    assert gen.lr == 0.1 and gen.fits_rejected == 1 and not gen.last_fit["accepted"]
    if fit == "one_sided":  # no move after the forward at the base's point: bitwise the base's own step
        assert torch.equal(model.w.detach(), torch.ones(3, dtype=DT) + 0.1 * torch.ones(3, dtype=DT))
    torch.testing.assert_close(model.w.detach(), torch.full((3,), 1.1, dtype=DT))  # the base's own step


@pytest.mark.parametrize("fit", FITS)
def test_ascent_direction_keeps_the_lr_without_clip_and_shrinks_it_with_clip(fit):
    loss_fn, _, _, w0 = quadratic()
    for clip, expected in ((None, 0.1), (2.0, 0.05)):
        model = Point(w0)
        base = torch.optim.SGD(model.parameters(), lr=0.1, maximize=True)  # d = −g: lr* < 0
        gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1, clip=clip,
                  fit=fit)
        gen.batch_step(X, Y)
        assert gen.lr == pytest.approx(expected)


def test_lr0_search_picks_the_best_grid_point():
    loss_fn, h, b, w0 = quadratic()
    g = h @ w0 - b
    values = [float(loss_fn(w0 - eta * g, None)) for eta in SEARCH_GRID]
    best = SEARCH_GRID[min(range(len(values)), key=values.__getitem__)]
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, lr0="search", phi=1)
    gen.batch_step(X, Y)
    assert gen.lr == best and gen.extra_forwards == len(SEARCH_GRID) == 25
    torch.testing.assert_close(model.w.detach(), w0 - best * g, rtol=1e-10, atol=1e-12)
    gen.batch_step(X, Y)  # a normal fit afterwards
    assert gen.fits == 1 and gen.extra_forwards == 25 + 1  # the default one-sided fit: one forward


@pytest.mark.parametrize("fit", FITS)
def test_random_stream_and_buffers_are_as_without_gen(fit):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Linear(8, 2))
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    plain, wrapped = copy.deepcopy(net), copy.deepcopy(net)
    torch.manual_seed(5)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    opt.zero_grad()
    F.cross_entropy(plain(x), y).backward()
    opt.step()
    after_plain = torch.rand(3)
    torch.manual_seed(5)
    gen = GeN(wrapped.parameters(), model=wrapped, loss_fn=F.cross_entropy,
              base=torch.optim.SGD(wrapped.parameters(), lr=0.1), phi=1, fit=fit)
    gen.batch_step(x, y)
    assert torch.equal(torch.rand(3), after_plain)
    assert torch.equal(wrapped[1].running_mean, plain[1].running_mean)
    assert int(wrapped[1].num_batches_tracked) == 1


def test_state_dict_round_trip_with_adam_base():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    spec = {"name": "gen", "base": "adam", "base_params": {"lr": 0.01}, "phi": 2}
    opt = build_optimizer(spec, net, F.cross_entropy)
    for _ in range(5):
        opt.batch_step(x, y)
    twin = copy.deepcopy(net)
    opt2 = build_optimizer(spec, twin, F.cross_entropy)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.lr == opt.lr and opt2.steps == 5 and opt2.base.param_groups[0]["lr"] == opt.lr
    for _ in range(4):
        opt.batch_step(x, y)
        opt2.batch_step(x, y)
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    assert opt.lr == opt2.lr and opt.fits == opt2.fits == 4


WRAPPABLE = [n for n in optimizer_names() if n not in NOT_LINEAR_IN_LR]


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize("name", WRAPPABLE)
def test_gen_wraps_every_registered_optimizer(name, fit):
    """The base's update runs exactly once per GeN step, whatever the base (first or second order)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    x, y = torch.randn(24, 6), torch.randint(0, 3, (24,))
    gen = build_optimizer({"name": "gen", "base": name, "phi": 1, "fit": fit}, net, F.cross_entropy)
    calls = []
    attr = "batch_step" if hasattr(gen.base, "batch_step") else "step"
    inner = getattr(gen.base, attr)

    def counted(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    setattr(gen.base, attr, counted)
    losses = [float(gen.batch_step(x, y)) for _ in range(3)]
    assert len(calls) == 3
    assert all(torch.isfinite(torch.tensor(losses))) and gen.lr > 0
    per_fit = (1 if fit == "one_sided" else 2) + (attr == "batch_step")  # + L0 by a batched forward
    assert gen.fits == 3 and gen.extra_forwards == 3 * per_fit


@pytest.mark.parametrize("name", WRAPPABLE)
def test_one_sided_slope_is_the_gradient_along_the_bases_own_step(name):
    """``gᵀd`` of the one-sided fit, against a twin model stepped by the same base alone: its gradient ``g``
    and its step ``w − w' = lr·d`` (so no base may change ``p.grad`` in its step, and ``d`` is the base's)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    x, y = torch.randn(24, 6), torch.randint(0, 3, (24,))
    twin = copy.deepcopy(net)
    gen = build_optimizer({"name": "gen", "base": name, "phi": 1, "fit": "one_sided"}, net, F.cross_entropy)
    ref = build_optimizer({"name": name}, twin, F.cross_entropy)
    lr = gen.lr
    w = [p.detach().clone() for p in twin.parameters()]
    torch.manual_seed(1)
    gen.batch_step(x, y)
    torch.manual_seed(1)
    if hasattr(ref, "batch_step"):
        ref.batch_step(x, y)
    else:
        ref.zero_grad()
        F.cross_entropy(twin(x), y).backward()
        ref.step()
    expected = sum(float(p.grad.double().flatten() @ (w0 - p.detach()).double().flatten())
                   for p, w0 in zip(twin.parameters(), w, strict=True)) / lr
    assert gen.last_fit["g_dot_d"] == pytest.approx(expected, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("base", sorted(NOT_LINEAR_IN_LR))
def test_bases_not_linear_in_lr_are_refused(base):
    net = nn.Linear(3, 2)
    with pytest.raises(ConfigError, match=f"linear in lr.*{base}"):
        build_optimizer({"name": "gen", "base": base}, net, F.cross_entropy)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("phi", 0, "phi must be an integer >= 1, but got 0"),
        ("phi", 2.5, "phi must be an integer >= 1, but got 2.5"),
        ("gamma", 1.0, "gamma must be in [0, 1), but got 1.0"),
        ("lr0", -1.0, "lr0 must be > 0, 'search' or None, but got -1.0"),
        ("lr0", "auto", "lr0 must be > 0, 'search' or None, but got 'auto'"),
        ("clip", 0.5, "clip must be None or >= 1, but got 0.5"),
        ("fit", "two_sided", "fit must be one of one_sided, symmetric, but got 'two_sided'"),
        ("fit", None, "fit must be one of one_sided, symmetric, but got None"),
        ("base", "nope", "base must be one of"),
        ("base_params", {"lr": -1.0}, "lr must be >= 0, but got -1.0"),
    ],
)
def test_bad_values_are_rejected_with_rule_and_value(key, value, message):
    with pytest.raises(ConfigError) as err:
        build_optimizer({"name": "gen", key: value}, nn.Linear(3, 2), F.cross_entropy)
    assert message in str(err.value)


def test_step_without_a_batch_is_an_error():
    opt = build_optimizer({"name": "gen"}, nn.Linear(3, 2), F.cross_entropy)
    with pytest.raises(RuntimeError, match="batch_step"):
        opt.step()
