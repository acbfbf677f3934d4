"""K-FAC's shared storage (``shared_storage: true``): the same steps as separate running averages and Cholesky
factors (float64, to round-off) for cholesky and triangular, K-FAC and FOOF, with π; n² + n numbers per factor;
the rare rescale of the Cholesky part; a failed inverse update keeps the previous preconditioner; checkpoints;
and Mixer's fusion period holds no more than its phase 1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hyperswitch.optim import _kfac_shared, build_optimizer
from hyperswitch.switching import Policy


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))


def train(spec: dict, steps: int, m: nn.Module | None = None, opt=None, start: int = 0):
    m = m or model()
    opt = opt or build_optimizer(spec, m)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(steps)]
    for x, y in batches[start:]:
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return m, opt


CASES = [("kfac", "cholesky", False), ("kfac", "cholesky", True), ("kfac", "triangular", False),
         ("kfac", "triangular", True), ("foof", "cholesky", False), ("foof", "triangular", False)]


@pytest.mark.parametrize(("name", "inverse", "pi"), CASES)
def test_shared_storage_takes_the_same_steps(name, inverse, pi):
    spec = {"name": name, "lr": 0.1, "damping": 0.05, "inverse": inverse, "inverse_interval": 3,
            "factor_decay": 0.7, **({"pi_correction": pi} if name == "kfac" else {})}
    ref, ref_opt = train(spec, 10)
    got, opt = train({**spec, "shared_storage": True}, 10)
    for a, b in zip(ref.parameters(), got.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    # n² + n numbers per factor instead of 2n² (8 bytes each here), momentum the same
    sizes = [(7, 5), (6, 4), (5, 3)]  # (in + bias, out) per Linear
    factors = sum(i * i + i + ((o * o + o) if name == "kfac" else 0) for i, o in sizes)
    separate = sum(2 * i * i + (2 * o * o if name == "kfac" else 0) for i, o in sizes)
    momentum = sum(p.numel() for p in got.parameters())
    assert opt.state_bytes() == 8 * (factors + momentum)
    assert ref_opt.state_bytes() == 8 * (separate + momentum)


def test_the_shared_buffer_holds_the_average_and_the_cholesky_factor():
    spec = {"name": "kfac", "lr": 0.1, "damping": 0.05, "inverse_interval": 4, "factor_decay": 0.7}
    ref, ref_opt = train(spec, 6)  # steps 0-5: inverses from step 4's factors, one factor update (step 5) since
    got, opt = train({**spec, "shared_storage": True}, 6)
    w = list(got.parameters())[0]
    st, rst = opt.state[w], ref_opt.state[list(ref.parameters())[0]]
    assert st["cA"] == 0.7  # scaled by the one factor update since
    torch.testing.assert_close(torch.tril(st["SA"], -1), torch.tril(rst["A"], -1), rtol=0, atol=1e-14)
    torch.testing.assert_close(st["dA"], rst["A"].diagonal(), rtol=0, atol=1e-14)
    torch.testing.assert_close(torch.triu(st["SA"]) / st["cA"], rst["LA"].mT, rtol=0, atol=1e-12)


def test_a_long_inverse_interval_rescales_the_cholesky_part():
    spec = {"name": "kfac", "lr": 0.05, "damping": 0.1, "inverse_interval": 40, "factor_decay": 0.5}
    ref, _ = train(spec, 45)
    got, opt = train({**spec, "shared_storage": True}, 45)  # 0.5^20 < 1e-6: rescaled within each interval
    for a, b in zip(ref.parameters(), got.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-10)
    assert all(_kfac_shared.MIN_SCALE <= st["cA"] <= 1 for st in opt.state.values() if "cA" in st)


def test_a_failed_inverse_update_keeps_the_previous_preconditioner():
    m, opt = train({"name": "kfac", "lr": 0.1, "damping": 0.05, "inverse_interval": 1, "shared_storage": True}, 3)
    w = list(m.parameters())[0]
    st = opt.state[w]
    before = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in st.items() if k in _kfac_shared.KEYS}
    direction = opt.precondition_grads()[w].clone()
    st["SG"][0, 0] = float("nan")  # G's lower triangle is no longer a positive definite matrix's
    st["dG"][0] = -1.0
    with pytest.raises(RuntimeError, match="not positive definite"):
        _kfac_shared.build(st, True, 0.05, False)
    st["dG"][0] = before["dG"][0]
    st["SG"][0, 0] = before["SG"][0, 0]
    for k, v in before.items():  # A's diagonal was put back after G failed
        assert torch.equal(st[k], v) if torch.is_tensor(v) else st[k] == v, k
    torch.testing.assert_close(opt.precondition_grads()[w], direction, rtol=0, atol=0)


def test_shared_storage_needs_a_cholesky_inverse():
    with pytest.raises(ValueError, match="shared_storage needs inverse cholesky or triangular"):
        build_optimizer({"name": "kfac", "inverse": "eigen", "shared_storage": True}, model())


def test_a_checkpoint_mid_run_continues_identically():
    spec = {"name": "kfac", "lr": 0.1, "damping": 0.05, "inverse_interval": 3, "shared_storage": True}
    full, _ = train(spec, 10)
    m, opt = train(spec, 5)
    state, weights = opt.state_dict(), {k: v.clone() for k, v in m.state_dict().items()}
    m2 = model()
    m2.load_state_dict(weights)
    opt2 = build_optimizer(spec, m2)
    opt2.load_state_dict(state)
    resumed, _ = train(spec, 10, m=m2, opt=opt2, start=5)
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


@pytest.mark.parametrize("control", [{}, {"rescale": True, "adaptive_damping": True, "fisher": "bernoulli"}],
                         ids=["plain", "step_control"])
def test_mixer_fusion_holds_no_more_than_phase_one(control):
    """With step control phase 1's momentum is the previous update δ₀ (``prev_update``), not a momentum buffer:
    both are freed when fusion starts (on CURVES the fusion period held one parameter-sized copy more than
    phase 1 before this was so: 21.84 MB against 18.47 MB)."""
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
    kfac = {"name": "kfac", "lr": 0.01, "damping": 0.1, "momentum": 0.9, "inverse_interval": 2,
            "shared_storage": True, **control}
    stepper = Policy.from_spec({"type": "mixer", "phase1": kfac, "phase2": {"name": "sgdm", "lr": 0.01},
                                "switch": {"at": 4}, "corrector": {"T1": 3}}).build(net, nn.functional.cross_entropy)
    x, y = torch.randn(16, 20), torch.randint(0, 4, (16,))
    seen: dict[str, list[int]] = {}
    kfac_momentum: list[int] = []
    for _ in range(10):
        r = stepper.step(x, y)
        seen.setdefault(r.optimizer, []).append(stepper.state_bytes())
        if r.optimizer == "fusion" and stepper.opt1 is not None:
            kfac_momentum.append(sum(st[k].numel() for st in stepper.opt1.state.values()
                                     for k in ("momentum_buffer", "prev_update") if k in st))
        elif r.optimizer == "kfac":
            kfac_momentum_before = sum(st[k].numel() for st in stepper.opt1.state.values()
                                       for k in ("momentum_buffer", "prev_update") if k in st)
    params = sum(p.numel() * 4 for p in net.parameters())
    assert kfac_momentum_before == sum(p.numel() for p in net.parameters())  # phase 1 held its momentum
    assert kfac_momentum and set(kfac_momentum) == {0}  # phase 1's momentum is freed when fusion starts
    assert max(seen["fusion"]) == max(seen["kfac"])  # the corrector's velocity takes its place, byte for byte
    assert seen["sgdm"][-1] == params  # after fusion: SGD's momentum alone
