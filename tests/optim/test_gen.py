"""GeN (docs/algorithms.md#gen) on quadratics with closed-form answers, and around every registered optimizer."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.optim import build_optimizer, optimizer_names
from hyperswitch.optim.gen import NOT_LINEAR_IN_LR, SEARCH_GRID, GeN

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


def test_sgd_fit_is_the_closed_form_optimal_lr():
    loss_fn, h, b, w0 = quadratic()
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1)
    g = h @ w0 - b
    lr_star = float(g @ g / (g @ h @ g))
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(lr_star, rel=1e-10)
    assert gen.last_fit["accepted"] and gen.last_fit["lr_star"] == pytest.approx(lr_star, rel=1e-10)
    torch.testing.assert_close(model.w.detach(), w0 - lr_star * g, rtol=1e-10, atol=1e-12)
    assert base.param_groups[0]["lr"] == gen.lr == gen.param_groups[0]["lr"]


def test_gamma_smooths_the_fitted_lr():
    loss_fn, h, b, w0 = quadratic()
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.9, phi=1)
    g = h @ w0 - b
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(0.9 * 0.05 + 0.1 * float(g @ g / (g @ h @ g)), rel=1e-10)


def test_adam_fit_uses_adams_direction_and_advances_its_state_once_per_step():
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
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1)
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(float(g @ d / (d @ h @ d)), rel=1e-8)
    for k in range(2, 6):
        gen.batch_step(X, Y)
        assert int(base.state[model.w]["step"]) == k


def test_fits_run_only_every_phi_steps():
    loss_fn, _, _, w0 = quadratic()
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.5, phi=4)
    for _ in range(12):
        gen.batch_step(X, Y)
    assert gen.fits == 3 and gen.extra_forwards == 6
    assert model.calls == 12 + 6
    changes = [t + 1 for t in range(1, 12) if gen.lr_trace[t] != gen.lr_trace[t - 1]]
    assert set(changes) <= {4, 8, 12} and gen.lr_trace[2] == 0.01


@pytest.mark.parametrize(
    ("lr_prev", "clip", "expected"), [(1e-4, 2.0, 2e-4), (50.0, 2.0, 25.0), (1e-4, 1.0, 1e-4)]
)
def test_clip_bounds_the_fitted_lr(lr_prev, clip, expected):
    loss_fn, h, b, w0 = quadratic()
    g = h @ w0 - b
    lr_star = float(g @ g / (g @ h @ g))  # about 0.08: outside [lr_prev/clip, clip·lr_prev] in every case
    assert not lr_prev / clip <= lr_star <= clip * lr_prev
    model = Point(w0)
    base = torch.optim.SGD(model.parameters(), lr=lr_prev)
    gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1, clip=clip)
    gen.batch_step(X, Y)
    assert gen.lr == pytest.approx(expected, rel=1e-12)


def test_non_convex_fit_keeps_the_lr():
    model = Point(torch.ones(3, dtype=DT))
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = GeN(model.parameters(), model=model, loss_fn=lambda z, y: -0.5 * z @ z, base=base, gamma=0.0, phi=1)
    gen.batch_step(X, Y)
    assert gen.lr == 0.1 and gen.fits_rejected == 1 and not gen.last_fit["accepted"]
    torch.testing.assert_close(model.w.detach(), torch.full((3,), 1.1, dtype=DT))  # the base's own step


def test_ascent_direction_keeps_the_lr_without_clip_and_shrinks_it_with_clip():
    loss_fn, _, _, w0 = quadratic()
    for clip, expected in ((None, 0.1), (2.0, 0.05)):
        model = Point(w0)
        base = torch.optim.SGD(model.parameters(), lr=0.1, maximize=True)  # d = −g: lr* < 0
        gen = GeN(model.parameters(), model=model, loss_fn=loss_fn, base=base, gamma=0.0, phi=1, clip=clip)
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
    assert gen.fits == 1 and gen.extra_forwards == 27


def test_random_stream_and_buffers_are_as_without_gen():
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
              base=torch.optim.SGD(wrapped.parameters(), lr=0.1), phi=1)
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


@pytest.mark.parametrize("name", WRAPPABLE)
def test_gen_wraps_every_registered_optimizer(name):
    """The base's update runs exactly once per GeN step, whatever the base (first or second order)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3))
    x, y = torch.randn(24, 6), torch.randint(0, 3, (24,))
    gen = build_optimizer({"name": "gen", "base": name, "phi": 1}, net, F.cross_entropy)
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
    assert gen.fits == 3 and gen.extra_forwards >= 6


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
