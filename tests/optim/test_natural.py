"""EF / iEF / sampled Fisher against dense references computed by plain autograd (float64)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.optim import build_optimizer
from hyperswitch.optim.natural import (
    EmpiricalFisher,
    ImprovedEmpiricalFisher,
    SampledFisher,
    solve_gram,
)

DT = torch.float64


def half_mse(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood (unit variance) up to a constant: ½·mean (z − y)²."""
    return 0.5 * F.mse_loss(z, y)


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def loop_jacobian(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample gradients, one autograd call per sample (the reference for J)."""
    rows = []
    for n in range(x.shape[0]):
        loss = loss_fn(model(x[n:n + 1]), y[n:n + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))]))
    return torch.stack(rows)


def mlp(seed: int = 0, sizes=(5, 7, 3)) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.Tanh(), nn.Linear(sizes[1], sizes[2])).to(DT)


def classification(n: int = 6, d: int = 5, c: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=DT), torch.randint(0, c, (n,), generator=g)


def least_squares(n: int = 8, d: int = 12, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=DT), torch.randn(n, 1, generator=g, dtype=DT)


def step_delta(opt, model, x, y) -> torch.Tensor:
    before = flat_params(model)
    opt.batch_step(x, y)
    return flat_params(model) - before


def min_norm_ngd(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, h: float) -> torch.Tensor:
    """G⁺∇L with the Gauss-Newton matrix G = (h/N) Σ Jzᵀ Jz built densely (P×P) and a pseudo-inverse.

    ``h`` is the loss's second derivative in the (scalar) output: 1 for ½(z − y)², 2 for (z − y)². For the
    linear model G is also the Hessian, and for ½(z − y)² the Fisher of the unit-variance Gaussian."""
    params = list(model.parameters())
    rows = []
    for n in range(x.shape[0]):
        z = model(x[n:n + 1]).reshape(())
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(z, params)]))
    jz = torch.stack(rows)
    gn = h * jz.T @ jz / x.shape[0]
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss_fn(model(x), y), params)])
    return torch.linalg.pinv(gn, hermitian=True) @ grad


def test_per_sample_gradients_match_an_autograd_loop():
    model = mlp()
    x, y = classification()
    opt = ImprovedEmpiricalFisher(model.parameters(), model=model, loss_fn=F.cross_entropy, lr=1.0)
    losses, blocks, outputs = opt.per_sample(x, y)
    jac = torch.cat(blocks, dim=1)
    torch.testing.assert_close(jac, loop_jacobian(model, F.cross_entropy, x, y), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(losses, F.cross_entropy(model(x), y, reduction="none"), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(outputs, model(x).detach(), rtol=1e-12, atol=1e-14)


def test_ief_equals_min_norm_natural_gradient_on_linear_least_squares():
    x, y = least_squares()  # N = 8 samples, P = 13 parameters
    torch.manual_seed(0)
    model = nn.Linear(12, 1).to(DT)
    expected = -0.5 * min_norm_ngd(model, half_mse, x, y, h=1.0)
    opt = ImprovedEmpiricalFisher(model.parameters(), model=model, loss_fn=half_mse, lr=0.5, damping=1e-12)
    torch.testing.assert_close(step_delta(opt, model, x, y), expected, rtol=1e-7, atol=1e-10)


def test_ief_with_plain_mse_is_twice_the_natural_gradient():
    x, y = least_squares()
    torch.manual_seed(0)
    model = nn.Linear(12, 1).to(DT)
    expected = -0.5 * min_norm_ngd(model, F.mse_loss, x, y, h=2.0)
    opt = ImprovedEmpiricalFisher(model.parameters(), model=model, loss_fn=F.mse_loss, lr=0.5, damping=1e-12)
    torch.testing.assert_close(step_delta(opt, model, x, y), 2 * expected, rtol=1e-7, atol=1e-10)


def test_ef_is_not_the_natural_gradient_on_least_squares():
    x, y = least_squares()
    torch.manual_seed(0)
    model = nn.Linear(12, 1).to(DT)
    ngd = -0.5 * min_norm_ngd(model, half_mse, x, y, h=1.0)
    opt = EmpiricalFisher(model.parameters(), model=model, loss_fn=half_mse, lr=0.5, damping=1e-12)
    ef = step_delta(opt, model, x, y)
    assert (ef - ngd).norm() > 0.1 * ngd.norm()


@pytest.mark.parametrize("cls", [EmpiricalFisher, ImprovedEmpiricalFisher])
def test_undamped_updates_move_every_sample_by_the_prescribed_amount(cls):
    """J·Δ_EF = −lr·1 and J·Δ_iEF = −lr·s with s_n = ‖softmax(z_n) − onehot(y_n)‖² (closed form for CE)."""
    model = mlp()
    x, y = classification(n=6)  # N = 6 < P = 66
    jac = loop_jacobian(model, F.cross_entropy, x, y)
    z = model(x).detach()
    s = (torch.softmax(z, -1) - F.one_hot(y, 3).to(DT)).pow(2).sum(1)
    opt = cls(model.parameters(), model=model, loss_fn=F.cross_entropy, lr=0.3, damping=1e-12)
    delta = step_delta(opt, model, x, y)
    target = torch.ones(6, dtype=DT) if cls is EmpiricalFisher else s
    torch.testing.assert_close(jac @ delta, -0.3 * target, rtol=1e-7, atol=1e-9)


def test_grad_holds_the_mean_gradient_and_loss_is_the_mean_before_the_step():
    model = mlp()
    x, y = classification()
    ref = copy.deepcopy(model)
    expected_loss = F.cross_entropy(ref(x), y)
    expected_grad = torch.autograd.grad(expected_loss, list(ref.parameters()))
    opt = EmpiricalFisher(model.parameters(), model=model, loss_fn=F.cross_entropy, lr=0.01)
    loss = opt.batch_step(x, y)
    torch.testing.assert_close(loss, expected_loss.detach(), rtol=1e-12, atol=1e-14)
    for p, g in zip(model.parameters(), expected_grad, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)


def test_weight_decay_adds_lr_times_decay_times_w():
    x, y = classification()
    a, b = mlp(), mlp()
    w = flat_params(a)
    d0 = step_delta(EmpiricalFisher(a.parameters(), model=a, loss_fn=F.cross_entropy, lr=0.1), a, x, y)
    opt = EmpiricalFisher(b.parameters(), model=b, loss_fn=F.cross_entropy, lr=0.1, weight_decay=0.01)
    torch.testing.assert_close(step_delta(opt, b, x, y), d0 - 0.1 * 0.01 * w, rtol=1e-9, atol=1e-12)


def test_momentum_accumulates_like_sgd():
    x, y = classification()
    a, b = mlp(), mlp()
    plain = EmpiricalFisher(a.parameters(), model=a, loss_fn=F.cross_entropy, lr=0.1)
    mom = EmpiricalFisher(b.parameters(), model=b, loss_fn=F.cross_entropy, lr=0.1, momentum=0.5)
    d1 = step_delta(plain, a, x, y)
    torch.testing.assert_close(step_delta(mom, b, x, y), d1, rtol=1e-10, atol=1e-13)
    # second step: buf = 0.5·d1/lr + d2 where d2 is EF's direction at b's (= a's) new parameters
    d2 = step_delta(plain, a, x, y)
    torch.testing.assert_close(step_delta(mom, b, x, y), d2 + 0.5 * d1, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("likelihood", ["categorical", "gaussian"])
def test_sampled_fisher_matches_the_dense_formula(likelihood):
    """Δw = −lr·λ⁻¹[I − Jsᵀ(JsJsᵀ + λM I)⁻¹Js] g, built densely (P×P), = −lr·(F̂ + λI)⁻¹ g, F̂ = JsᵀJs/M."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)  # P = 26
    n, m, lam, lr, seed = 5, 3, 0.05, 0.2, 11
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g, dtype=DT)
    if likelihood == "categorical":
        y, loss_fn = torch.randint(0, 2, (n,), generator=g), F.cross_entropy
    else:
        y, loss_fn = torch.randn(n, 2, generator=g, dtype=DT), F.mse_loss
    z = model(x).detach()
    # the same draws as the optimizer: its generator is seeded with sample_seed + rank (0)
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    rows = []
    if likelihood == "categorical":
        labels = torch.multinomial(torch.softmax(z, -1), m, replacement=True, generator=gen)
        for i in range(n):
            for k in range(m):
                logp = torch.log_softmax(model(x[i:i + 1])[0], -1)[labels[i, k]]
                rows.append(torch.cat([t.reshape(-1) for t in torch.autograd.grad(logp, params)]))
    else:
        eps = torch.randn((n, m, 2), generator=gen, dtype=DT)
        for i in range(n):
            for k in range(m):
                logp = -0.5 * (model(x[i:i + 1])[0] - (z[i] + eps[i, k])).pow(2).sum()
                rows.append(torch.cat([t.reshape(-1) for t in torch.autograd.grad(logp, params)]))
    js = torch.stack(rows)
    grad_sum = loop_jacobian(model, loss_fn, x, y).sum(0)
    p = js.shape[1]
    eye = torch.eye(p, dtype=DT)
    woodbury = (eye - js.T @ torch.linalg.inv(js @ js.T + lam * m * torch.eye(n * m, dtype=DT)) @ js) / lam
    expected = -lr * woodbury @ grad_sum
    direct = -lr * torch.linalg.solve(js.T @ js / m + lam * eye, grad_sum)
    torch.testing.assert_close(expected, direct, rtol=1e-8, atol=1e-10)

    opt = SampledFisher(params, model=model, loss_fn=loss_fn, lr=lr, damping=lam, n_samples=m,
                        sample_seed=seed, likelihood=likelihood)
    torch.testing.assert_close(step_delta(opt, model, x, y), expected, rtol=1e-8, atol=1e-10)


def test_sampled_fisher_auto_likelihood_follows_the_target_dtype():
    model = mlp()
    opt = SampledFisher(model.parameters(), model=model, loss_fn=F.cross_entropy, lr=0.1)
    assert opt._likelihood(torch.zeros(3, dtype=torch.int64)) == "categorical"
    assert opt._likelihood(torch.zeros(3, 2)) == "gaussian"


def test_sampled_fisher_seeded_state_round_trips():
    x, y = classification(n=8)
    a = mlp()
    hp = {"loss_fn": F.cross_entropy, "lr": 0.05, "sample_seed": 4, "momentum": 0.9}
    opt_a = SampledFisher(a.parameters(), model=a, **hp)
    for _ in range(2):
        opt_a.batch_step(x, y)
    b = copy.deepcopy(a)
    opt_b = SampledFisher(b.parameters(), model=b, **hp)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    torch.manual_seed(99)  # the seeded generator, not the global one, must drive the draws
    for _ in range(2):
        opt_a.batch_step(x, y)
    for _ in range(2):
        opt_b.batch_step(x, y)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_solve_gram_falls_back_when_not_positive_definite():
    v = torch.tensor([1.0, 2.0, 3.0], dtype=DT)
    gram = torch.outer(v, v)  # rank 1: Cholesky fails without damping
    x, fallback = solve_gram(gram, v, 0.0)
    assert fallback
    torch.testing.assert_close(x, torch.linalg.pinv(gram) @ v, rtol=1e-10, atol=1e-12)
    x, fallback = solve_gram(gram, v, 1e-3)
    assert not fallback
    torch.testing.assert_close(x, torch.linalg.solve(gram + 1e-3 * torch.eye(3, dtype=DT), v))


@pytest.mark.parametrize(
    ("name", "key", "value", "message"),
    [
        ("ef", "damping", 0.0, "damping must be > 0, but got 0.0"),
        ("ief", "lr", -1.0, "lr must be >= 0, but got -1.0"),
        ("ief", "momentum", 1.0, "momentum must be in [0, 1), but got 1.0"),
        ("ef", "weight_decay", -0.5, "weight_decay must be >= 0, but got -0.5"),
        ("sf", "n_samples", 0, "n_samples must be an integer >= 1, but got 0"),
        ("sf", "sample_seed", -3, "sample_seed must be an integer >= 0, but got -3"),
        ("sf", "likelihood", "poisson",
         "likelihood must be one of auto, categorical, gaussian, but got 'poisson'"),
    ],
)
def test_bad_values_are_rejected_with_rule_and_value(name, key, value, message):
    model = mlp()
    with pytest.raises(ConfigError) as err:
        build_optimizer({"name": name, key: value}, model, F.cross_entropy)
    assert message in str(err.value)


def test_step_without_a_batch_is_an_error():
    model = mlp()
    opt = build_optimizer({"name": "ief"}, model, F.cross_entropy)
    with pytest.raises(RuntimeError, match="batch_step"):
        opt.step()


def test_parameters_outside_the_model_are_rejected():
    model = mlp()
    stray = nn.Parameter(torch.zeros(2, dtype=DT))
    with pytest.raises(ValueError, match="must belong to model"):
        EmpiricalFisher([*model.parameters(), stray], model=model, loss_fn=F.cross_entropy, lr=0.1)


# -- the factored path (Linear / Conv2d) against torch.func ----------------------------------------------------
class Reused(nn.Module):
    """One Linear applied twice (two calls of the same module: positions of one layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.fc, self.out = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(torch.tanh(self.inp(x))))
        return self.out(torch.tanh(self.fc(h)))


class Sequence(nn.Module):
    """A Linear on (N, T, d) inputs: T = 2 positions per sample; in-place ReLU on a Linear's output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(6, 8), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu_(self.fc(x.reshape(-1, 2, 6))).flatten(1))


def cnn() -> nn.Module:
    """Conv2d with padding 1, padding "same" with an even kernel (asymmetric), stride 2 without padding."""
    return nn.Sequential(
        nn.Unflatten(1, (2, 6, 6)),
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(3, 4, 2, padding="same", bias=False), nn.Tanh(),
        nn.Conv2d(4, 2, 3, stride=2, dilation=1), nn.Flatten(),
        nn.Linear(8, 3),
    )


MODELS = {
    "mlp": lambda: nn.Sequential(nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 3)),
    "cnn": cnn,
    "reused": lambda: nn.Sequential(nn.Linear(12, 5), nn.Tanh(), Reused()),
    "sequence": Sequence,
    "layernorm": lambda: nn.Sequential(nn.Linear(12, 7), nn.LayerNorm(7), nn.Tanh(), nn.Linear(7, 3)),
}
METHODS = {
    "ef": ("ef", {}),
    "ief": ("ief", {}),
    "sf": ("sf", {"n_samples": 2, "sample_seed": 5, "damping": 0.1}),
    "sf-gaussian": ("sf", {"n_samples": 1, "sample_seed": 5, "damping": 0.1}),
    "ief-mse": ("ief", {}),
}


def make(name: str) -> nn.Module:
    torch.manual_seed(4)
    return MODELS[name]().to(DT)


def batch(method: str, n: int = 6):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 72, generator=g, dtype=DT)
    if method in ("sf-gaussian", "ief-mse"):
        return x, torch.randn(n, 3, generator=g, dtype=DT), F.mse_loss
    return x, torch.randint(0, 3, (n,), generator=g), F.cross_entropy


def inputs_for(model_name: str, x: torch.Tensor) -> torch.Tensor:
    return x if model_name == "cnn" else x[:, :12]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_factored_path_equals_torch_func(model_name, method):
    """Two steps (momentum, weight decay) of the default path and of jacobian: torch.func, float64."""
    name, extra = METHODS[method]
    x, y, loss_fn = batch(method)
    x = inputs_for(model_name, x)
    runs = []
    for jacobian in ("auto", "torch.func"):
        model = make(model_name)
        spec = {"name": name, "lr": 0.1, "momentum": 0.5, "weight_decay": 0.01, "jacobian": jacobian, **extra}
        opt = build_optimizer(spec, model, loss_fn)
        losses = [opt.batch_step(x, y) for _ in range(2)]
        runs.append((opt, flat_params(model), torch.stack(losses),
                     torch.cat([p.grad.reshape(-1) for p in model.parameters()])))
    (fast, w_fast, l_fast, g_fast), (slow, w_slow, l_slow, g_slow) = runs
    assert slow.jacobian_path == "torch.func"
    if model_name == "layernorm":
        assert fast.jacobian_path == "torch.func"
        assert "LayerNorm" in fast.fallback_reason
    else:
        assert fast.jacobian_path == "factored", fast.fallback_reason
    torch.testing.assert_close(l_fast, l_slow, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(w_fast, w_slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pair_limit", [0, 1 << 24])
@pytest.mark.parametrize("model_name", ["sequence", "cnn", "reused"])
def test_factored_rows_equal_the_per_sample_gradients(model_name, pair_limit, monkeypatch):
    """Gram, Jᵀc and J v of the factors against the materialised J (both Gram strategies: pair matrices and
    materialised per-layer G), and J against an autograd loop."""
    from hyperswitch.optim import _natural_factored as nf

    monkeypatch.setattr(nf, "PAIR_LIMIT", pair_limit)
    model = make(model_name)
    x, y, loss_fn = batch("ef")
    x = inputs_for(model_name, x)
    plan, reason = nf.make_plan(model, list(model.parameters()))
    assert reason is None
    rows = nf.factored_pass(model, plan, x, y, loss_fn).rows
    jac = loop_jacobian(model, loss_fn, x, y)
    torch.testing.assert_close(torch.cat(rows.blocks(), 1), jac, rtol=1e-12, atol=1e-14)
    rows = nf.factored_pass(model, plan, x, y, loss_fn).rows  # fresh: no cached G
    torch.testing.assert_close(rows.gram(), jac @ jac.T, rtol=1e-12, atol=1e-13)
    c = torch.linspace(-1, 2, x.shape[0], dtype=DT)
    torch.testing.assert_close(torch.cat(rows.tmul(c)), jac.T @ c, rtol=1e-12, atol=1e-13)
    v = torch.linspace(-1, 1, jac.shape[1], dtype=DT)
    sizes = [p.numel() for p in model.parameters()]
    torch.testing.assert_close(rows.mul(list(v.split(sizes))), jac @ v, rtol=1e-12, atol=1e-13)

    # two extra per-sample objectives (as SF's M = 2 drawn labels): rows n·2 + k, sharing the inputs
    out = nf.factored_pass(model, plan, x, y, loss_fn, lambda z: [z[:, 0], (z * z).sum(1)])
    params = list(model.parameters())
    js_rows = []
    for i in range(x.shape[0]):
        for k in range(2):
            z = model(x[i:i + 1])
            o = z[0, 0] if k == 0 else (z * z).sum()
            js_rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(o, params)]))
    js = torch.stack(js_rows)
    torch.testing.assert_close(out.extra.gram(), js @ js.T, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(out.extra.cross_gram(out.rows), js @ jac.T, rtol=1e-12, atol=1e-13)
    c2 = torch.linspace(1, 3, js.shape[0], dtype=DT)
    both = torch.cat(nf.tmul_sum([(out.rows, c), (out.extra, c2)]))
    torch.testing.assert_close(both, jac.T @ c + js.T @ c2, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(out.extra.mul(list(v.split(sizes))), js @ v, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(torch.cat(out.extra.blocks(), 1), js, rtol=1e-12, atol=1e-14)


def test_factored_path_with_a_subset_of_parameters():
    """Only the last layer's weight is optimized (its bias and the first layer are not)."""
    x, y, loss_fn = batch("ief")
    deltas = []
    for jacobian in ("auto", "torch.func"):
        model = make("mlp")
        opt = ImprovedEmpiricalFisher([model[2].weight], model=model, loss_fn=loss_fn, lr=0.5, jacobian=jacobian)
        deltas.append(step_delta(opt, model, x[:, :12], y))
        assert opt.jacobian_path == ("factored" if jacobian == "auto" else "torch.func")
    torch.testing.assert_close(deltas[0], deltas[1], rtol=1e-10, atol=1e-12)
    assert deltas[0][:7 * 12 + 7].abs().max() == 0


class WeightOutsideForward(nn.Module):
    """Uses its Linear's weight a second time through F.linear: the hooks cannot see that use."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(12, 12), nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(F.linear(torch.tanh(self.fc(x)), self.fc.weight)))


class SequenceFirst(nn.Module):
    """Feeds a Linear (T, N, d) tensors (batch second): the factors would mix samples."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(6, 4), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc(x.reshape(x.shape[0], 2, 6).transpose(0, 1)))  # (2, N, 4)
        return self.out(h.transpose(0, 1).reshape(x.shape[0], 8))


@pytest.mark.parametrize("cls", [WeightOutsideForward, SequenceFirst])
def test_first_step_check_falls_back_to_torch_func(cls):
    x, y, loss_fn = batch("ef")
    deltas = []
    for jacobian in ("auto", "torch.func"):
        torch.manual_seed(0)
        model = cls().to(DT)
        opt = EmpiricalFisher(model.parameters(), model=model, loss_fn=loss_fn, lr=0.1, jacobian=jacobian)
        if jacobian == "auto":
            with pytest.warns(RuntimeWarning, match="torch.func from now on"):
                deltas.append(step_delta(opt, model, x[:, :12], y))
            assert "differ from autograd" in opt.fallback_reason
        else:
            deltas.append(step_delta(opt, model, x[:, :12], y))
        assert opt.jacobian_path == "torch.func"
    torch.testing.assert_close(deltas[0], deltas[1], rtol=1e-12, atol=1e-14)


def test_check_keeps_train_mode_and_dropout_models_use_the_factored_path():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 3)).to(DT)
    x, y, loss_fn = batch("ief")
    opt = ImprovedEmpiricalFisher(model.parameters(), model=model, loss_fn=loss_fn, lr=0.1)
    opt.batch_step(x[:, :12], y)
    assert opt.jacobian_path == "factored" and model.training and model[1].training


def test_jacobian_option_is_validated():
    model = mlp()
    with pytest.raises(ConfigError) as err:
        build_optimizer({"name": "ef", "jacobian": "dense"}, model, F.cross_entropy)
    assert "jacobian must be one of auto, torch.func, but got 'dense'" in str(err.value)


@pytest.mark.parametrize("name", ["ef", "ief", "sf"])
def test_float32_factored_step_is_close_to_torch_func(name):
    """In float32 the factored path forms its products in float32 (solves in float64); the step stays within
    float32 rounding of the torch.func path's (whose SF products are float64)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 12, generator=g), torch.randint(0, 3, (16,), generator=g)
    deltas = []
    for jacobian in ("auto", "torch.func"):
        torch.manual_seed(4)
        model = MODELS["mlp"]()
        opt = build_optimizer({"name": name, "lr": 0.1, "damping": 1e-3, "sample_seed": 1, "jacobian": jacobian}
                              if name == "sf" else {"name": name, "lr": 0.1, "damping": 1e-3, "jacobian": jacobian},
                              model, F.cross_entropy)
        deltas.append(step_delta(opt, model, x, y))
    assert (deltas[0] - deltas[1]).norm() <= 1e-4 * deltas[1].norm()


# -- normalised EF / iEF (normalize: true) -----------------------------------------------------------------------
@pytest.mark.parametrize("jacobian", ["auto", "torch.func"])
@pytest.mark.parametrize("name", ["ef", "ief"])
@pytest.mark.parametrize("damping", [1e-7, 1e-4, 10.0])
def test_normalised_update_matches_the_dense_reference(name, jacobian, damping):
    """Δw = −lr·d/‖d‖, d = Jᵀ(JJᵀ + λI)⁻¹r (r = 1 for EF, s for iEF), J by an autograd loop in float64."""
    model = mlp()
    x, y = classification(n=6)
    jac = loop_jacobian(model, F.cross_entropy, x, y)
    z = model(x).detach()
    s = (torch.softmax(z, -1) - F.one_hot(y, 3).to(DT)).pow(2).sum(1)
    rhs = torch.ones(6, dtype=DT) if name == "ef" else s
    d = jac.T @ torch.linalg.solve(jac @ jac.T + damping * torch.eye(6, dtype=DT), rhs)
    opt = build_optimizer({"name": name, "lr": 0.07, "damping": damping, "normalize": True,
                           "jacobian": jacobian}, model, F.cross_entropy)
    delta = step_delta(opt, model, x, y)
    torch.testing.assert_close(delta, -0.07 * d / d.norm(), rtol=1e-9, atol=1e-12)
    assert opt.direction_norm == pytest.approx(float(d.norm()), rel=1e-9)
    assert opt.jacobian_path == ("factored" if jacobian == "auto" else "torch.func")


def test_plain_and_normalised_ef_differ_only_in_length():
    """normalize: false (the default) is the plain EF step; true divides it by ‖d‖: same direction, length lr."""
    x, y = classification(n=6)
    plain, unit = mlp(), mlp()
    d_plain = step_delta(build_optimizer({"name": "ef", "lr": 0.01}, plain, F.cross_entropy), plain, x, y)
    d_unit = step_delta(build_optimizer({"name": "ef", "lr": 0.01, "normalize": True}, unit, F.cross_entropy),
                        unit, x, y)
    assert float(d_unit.norm()) == pytest.approx(0.01, rel=1e-9)
    torch.testing.assert_close(d_unit / d_unit.norm(), d_plain / d_plain.norm(), rtol=1e-9, atol=1e-12)
    assert float(d_plain.norm()) != pytest.approx(0.01, rel=1e-2)


def test_float32_direction_norm_is_accurate_and_only_computed_when_normalising():
    """float32 model: ‖d‖ from per-block dot products equals the float64 norm of the same float32 direction to
    1e-6 (a float32 ``vector_norm`` accumulates to about 1e-6, the dot products to about 1e-8); the plain
    form leaves ``direction_norm`` unset (nothing uses it, and it costs a pass over d)."""
    x, y = classification(n=16, d=300, c=10)
    model = nn.Sequential(nn.Linear(300, 200), nn.Tanh(), nn.Linear(200, 10))
    ref = copy.deepcopy(model).to(DT)
    jac = loop_jacobian(ref, F.cross_entropy, x, y)
    d = jac.T @ torch.linalg.solve(jac @ jac.T + 1e-3 * torch.eye(16, dtype=DT), torch.ones(16, dtype=DT))
    opt = build_optimizer({"name": "ef", "lr": 0.5, "damping": 1e-3, "normalize": True}, model, F.cross_entropy)
    delta = step_delta(opt, model, x.float(), y).to(DT)
    assert opt.direction_norm == pytest.approx(float(d.norm()), rel=1e-4)  # float32 J against float64 J
    torch.testing.assert_close(delta, -0.5 * d / d.norm(), rtol=1e-3, atol=1e-6)
    blocks = [torch.randn(200, 300) * 1e3, torch.randn(200), torch.randn(10, 200) * 1e-3, torch.randn(10)]
    exact = float(torch.cat([b.to(DT).reshape(-1) for b in blocks]).norm())
    opt._normalized(blocks)
    assert opt.direction_norm == pytest.approx(exact, rel=1e-6)
    plain = build_optimizer({"name": "ef", "lr": 0.5}, model, F.cross_entropy)
    plain.batch_step(x.float(), y)
    assert plain.direction_norm is None


def test_normalised_update_with_momentum_and_weight_decay_normalises_the_direction_only():
    """d/‖d‖ first, then weight decay and momentum as for the plain form."""
    model, ref = mlp(), mlp()
    x, y = classification(n=6)
    opt = build_optimizer({"name": "ef", "lr": 0.1, "normalize": True, "weight_decay": 0.5, "momentum": 0.9},
                          model, F.cross_entropy)
    w0 = flat_params(ref)
    jac = loop_jacobian(ref, F.cross_entropy, x, y)
    d = jac.T @ torch.linalg.solve(jac @ jac.T + 1e-7 * torch.eye(6, dtype=DT), torch.ones(6, dtype=DT))
    delta = step_delta(opt, model, x, y)
    torch.testing.assert_close(delta, -0.1 * (d / d.norm() + 0.5 * w0), rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_normalize_must_be_a_bool(value):
    with pytest.raises(ConfigError, match="normalize must be true or false"):
        build_optimizer({"name": "ef", "normalize": value}, mlp(), F.cross_entropy)


def test_sf_has_no_normalize_option():
    with pytest.raises(ConfigError):
        build_optimizer({"name": "sf", "normalize": True}, mlp(), F.cross_entropy)
