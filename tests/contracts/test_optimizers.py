"""The contract every registered optimizer keeps (parametrized over ``optimizer_names()`` when it runs):

(a) it lowers the loss of a small MLP on fixed synthetic data over 30 full-batch steps, by the registry's
    stepping protocol (``batch_step`` if it has one, else ``zero_grad``/``backward``/``step``);
(b) ``state_dict`` round-trips mid-run: after 5 steps the state goes through ``torch.save`` /
    ``torch.load(weights_only=True)`` (as train.driver checkpoints); a fresh optimizer on a copy of the model,
    loaded from it, takes the next 3 steps exactly like the original (losses equal, parameters ``torch.equal``);
(c) a bad learning rate (``lr``, or GeN's ``lr0``) is a ``ConfigError`` whose rule states the value;
(d) memory release: once the model and the optimizer are dropped, every tensor reachable from them (parameters,
    gradients, optimizer state, preconditioner factors and caches) is freed.

Deep copies are the stepper's contract (tests/contracts/test_policies.py): ``copy.deepcopy`` of a bare torch
optimizer keeps only its defaults, state and param groups, and K-FAC's hooks stay with the model they were
registered on, so a stepper copies itself through ``state_dict``, for every optimizer (``single-NAME`` there).
"""
from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.optim import build_optimizer, get_optimizer, optimizer_names
from tests.contracts.toy import checkpoint, optimizer_step, reachable_tensors

# Defaults tuned for real workloads can be too timid or too bold for 30 steps on this toy; the contract is
# about the mechanics, so a few get a learning rate that suits the toy (the defaults stay as registered).
LR_OVERRIDES: dict[str, dict] = {
    "lion": {"lr": 3e-3},  # default 1e-4: loss x0.97 in 30 steps
    "lamb": {"lr": 1e-2},  # default 1e-3: loss x0.91 in 30 steps
}
STEPS = 30


def problem(seed: int = 0):
    """A 2-layer tanh MLP on 64 points of 3 Gaussian classes in 8 dimensions (no scikit-learn needed)."""
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(3, 8, generator=g)
    y = torch.arange(64) % 3
    x = centers[y] + torch.randn(64, 8, generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    return model, x, y


def spec_for(name: str) -> dict:
    return {"name": name, **LR_OVERRIDES.get(name, {})}


NAMES = optimizer_names()


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases(name):
    model, x, y = problem()
    opt = build_optimizer(spec_for(name), model, F.cross_entropy)
    torch.manual_seed(1)
    for _ in range(STEPS):
        optimizer_step(opt, model, x, y)
    with torch.no_grad():
        first = float(F.cross_entropy(problem()[0](x), y))
        last = float(F.cross_entropy(model(x), y))
    assert last < 0.9 * first, f"{name}: loss {first:.4f} -> {last:.4f} after {STEPS} steps"


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name):
    model, x, y = problem()
    opt = build_optimizer(spec_for(name), model, F.cross_entropy)
    torch.manual_seed(1)
    for _ in range(5):
        optimizer_step(opt, model, x, y)
    twin = problem()[0]  # not deepcopy(model): that would also copy hooks an optimizer registered on it
    twin.load_state_dict(model.state_dict())
    state = checkpoint(opt.state_dict())
    fresh = build_optimizer(spec_for(name), twin, F.cross_entropy)
    fresh.load_state_dict(state)
    losses = []
    for o, m in ((opt, model), (fresh, twin)):
        torch.manual_seed(2)  # samplers that use torch's global generator draw the same labels
        losses.append([optimizer_step(o, m, x, y) for _ in range(3)])
    assert losses[0] == losses[1], name
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("name", NAMES)
def test_bad_learning_rate_is_a_config_error_naming_the_value(name):
    defaults = get_optimizer(name).defaults
    key = next((k for k in ("lr", "lr0") if k in defaults), None)
    assert key is not None, f"{name} must expose a learning rate (lr, or lr0 for rules) for search spaces"
    model, _, _ = problem()
    with pytest.raises(ConfigError) as err:
        build_optimizer({"name": name, key: -1.0}, model, F.cross_entropy)
    assert key in err.value.rule and "-1" in err.value.rule, str(err.value)


def _trained_and_dropped(name: str) -> tuple[list[weakref.ref], int]:
    model, x, y = problem()
    opt = build_optimizer(spec_for(name), model, F.cross_entropy)
    for _ in range(12):  # past K-FAC's and Shampoo's first inverse (every 10 steps by default)
        optimizer_step(opt, model, x, y)
    opt.state_dict()  # a checkpoint taken and thrown away holds nothing either
    tensors = reachable_tensors(opt, model)
    return [weakref.ref(t) for t in tensors], len(tensors)


@pytest.mark.parametrize("name", NAMES)
def test_memory_is_released_with_the_optimizer(name):
    refs, n = _trained_and_dropped(name)
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert n >= 4 and not alive, f"{name}: {len(alive)} of {n} tensors still alive: {[tuple(t.shape) for t in alive]}"
