"""IOMT (002, docs/algorithms.md#iomt): interleave candidate optimizers in cycles of ``tau`` steps, chosen
first by weighted random choice and then by one Gaussian-process surrogate per candidate.

Cycle ``i`` (from 0) starts at step ``i·tau + 1``: ``v`` = the compressed model state, then the candidate is
chosen, then it takes ``tau`` steps. At the cycle's end its score ``s`` (Eq. 2, ``_iomt_score.cycle_score``)
comes from ``l_0`` = the last loss before the cycle (the first cycle: its own first loss) and the cycle's
mini-batch losses ``l_1..l_tau``; ``(v, s)`` joins the candidate's GP data.

``select``:
- ``surrogate`` (the method): cycles ``0..n_ini-1`` by weighted random choice
  ``numpy.random.default_rng(seed).choice(m, p=w / sum(w))`` (weights start at 1; after each of these cycles
  the candidate's weight becomes ``max((s + 1)/2, omega_min)``, Eq. 3); from cycle ``n_ini`` on, the candidate
  maximising ``e = sigmoid(s_mu + (1 - 2^(-floor(i/n_halve))·omega_t)·s_sigma)`` (Eq. 7 verbatim; ties: the
  first). Note that with ``omega_t = 0`` (training from scratch) the coefficient is 1, so the exploration
  bonus is the full ``s_sigma`` whatever ``i``; the halving only matters when ``omega_t > 0``, where the
  coefficient grows from ``1 - omega_t`` towards 1. ``exploration: prose`` takes §3.4's prose instead ("a
  periodic halving of the weight for variance"): coefficient ``(1 - omega_t)·2^(-floor(i/n_halve))``, halved
  every ``n_halve`` cycles whatever ``omega_t`` (``_iomt_score.exploration_coefficient``); the default
  ``printed`` is Eq. (7) as above.
- ``random`` (ablation "random"): the weighted random choice in every cycle, weights updated after each.
- ``cyclical`` (ablation "cyclical"): candidate ``i mod m``.
``halving: false`` (ablation "w/o halve") uses Eq. (5)'s coefficient ``1 - omega_t`` throughout;
``use_transferability: false`` (ablation "w/o omega_t", and training from scratch) sets ``omega_t = 0``.
With ``use_transferability: true`` the spec gives ``omega_p`` (the pre-trained model's target accuracy) and
the ``logme`` and ``leep`` values; ``omega_t = beta·omega_p + (1 - beta)·(sigmoid(logme) + sigmoid(leep))/2``
(``workloads._transferability.omega_t``).

Defaults: ``tau 25``, ``n_ini 20``, ``n_components 2`` and the 15 candidates ``{sgd, sgdm, adagrad, rmsprop,
adam} x lr {0.1, 0.01, 0.001}`` are 002's (§5.1, Appendix C.1 and D); 002 states no value for ``alpha``,
``omega_min``, ``beta`` or the halving period, so ``alpha 0.5``, ``omega_min 0.1``, ``beta 0.5`` (both metric
kinds weigh the same) and ``n_halve 20`` cycles (= ``n_ini``: the first halving when surrogate selection
starts) are this project's choices. ``reset_state: false`` (**choice**, docs/algorithms.md#iomt): each
candidate is built on first use and keeps its optimizer state; ``true`` rebuilds it at each cycle start.

Events: one ``iomt_cycle`` per cycle at its first step (detail: cycle, candidate index, name, from, to, the
previous cycle's score, select = random | surrogate | cyclical); ``StepReport.switched`` when the candidate
changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import boolean, check_keys, choice, number, require_mapping
from hyperswitch.errors import ConfigError
from hyperswitch.switching._base import (
    Event,
    LossFn,
    PolicyType,
    Stepper,
    StepReport,
    current_lr,
    optimizer_state_bytes,
    optimizer_step,
)
from hyperswitch.switching._iomt_score import EXPLORATIONS, Compressor, Surrogates, acquisition, cycle_score
from hyperswitch.switching._registry import register_policy
from hyperswitch.switching._spec import OptimizerSpec, PolicySpec
from hyperswitch.workloads._transferability import omega_t as transfer_weight

DEFAULT_CANDIDATES: tuple[dict[str, Any], ...] = tuple(
    {"name": name, "lr": lr} for name in ("sgd", "sgdm", "adagrad", "rmsprop", "adam") for lr in (0.1, 0.01, 0.001)
)

DEFAULTS: dict[str, Any] = {
    "candidates": None, "tau": 25, "n_ini": 20, "omega_min": 0.1, "alpha": 0.5, "n_components": 2,
    "compress": "pca", "layers": "last", "n_halve": 20, "beta": 0.5, "use_transferability": False,
    "omega_p": None, "logme": None, "leep": None, "select": "surrogate", "halving": True,
    "reset_state": False, "seed": 0, "exploration": "printed",
}


@dataclass(frozen=True, slots=True)
class IOMTSpec(PolicySpec):
    """A validated ``iomt`` policy: every key of ``DEFAULTS`` (see the module docstring), ``candidates`` built."""

    candidates: tuple[OptimizerSpec, ...]
    tau: int
    n_ini: int
    omega_min: float
    alpha: float
    n_components: int
    compress: str
    layers: str
    n_halve: int
    beta: float
    use_transferability: bool
    select: str
    halving: bool
    reset_state: bool
    seed: int
    exploration: str = "printed"
    omega_p: float | None = None
    logme: float | None = None
    leep: float | None = None
    type: str = "iomt"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            if f.name != "type":
                value = getattr(self, f.name)
                out[f.name] = [c.as_dict() for c in value] if f.name == "candidates" else value
        return out

    def optimizer_names(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.candidates))

    def omega_t(self) -> float:
        """The transferability weight: 0 without ``use_transferability`` (training from scratch)."""
        if not self.use_transferability:
            return 0.0
        assert self.omega_p is not None and self.logme is not None and self.leep is not None  # validate requires
        return transfer_weight(self.beta, self.omega_p, self.logme, self.leep)


class IOMTStepper(Stepper):
    spec: IOMTSpec

    def __init__(self, model: nn.Module, loss_fn: LossFn, spec: IOMTSpec) -> None:
        super().__init__(model, loss_fn)
        self.spec = spec
        self.candidates: list[OptimizerSpec] = list(spec.candidates)
        self.labels = [c.label for c in self.candidates]
        self.tau, self.n_ini = int(spec.tau), int(spec.n_ini)
        self.omega_t = spec.omega_t()
        self.compressor = Compressor(spec.compress, spec.n_components, spec.layers, spec.seed)
        self.surrogates = Surrogates(len(self.candidates))
        self.rng = np.random.default_rng(int(spec.seed))
        self.weights = [1.0] * len(self.candidates)
        self.opts: dict[int, torch.optim.Optimizer] = {}
        self.cycle = 0  # index of the current (or next, when pos == 0) cycle
        self.pos = 0  # steps done in the current cycle
        self.current: int | None = None
        self.v: list[float] | None = None  # compressed state at the current cycle's start
        self.losses: list[float] = []  # l_1.. of the current cycle
        self.l_prev: float | None = None  # last loss before the current cycle
        self.last_score: float | None = None

    # --- decision -------------------------------------------------------------------------------------
    def _mode(self) -> str:
        select = self.spec.select
        if select == "surrogate" and self.cycle < self.n_ini:
            return "random"
        return str(select)

    def acquisition_values(self, v: np.ndarray) -> list[float]:
        """``e`` of every candidate at ``v`` for the current cycle index."""
        mu, sd = self.surrogates.predict_all(v)
        spec = self.spec
        return [acquisition(float(m), float(s), self.cycle, spec.n_halve, self.omega_t, spec.halving,
                            spec.exploration) for m, s in zip(mu, sd, strict=True)]

    def _choose(self, mode: str, v: np.ndarray) -> int:
        m = len(self.candidates)
        if mode == "cyclical":
            return self.cycle % m
        if mode == "random":
            w = np.asarray(self.weights, dtype=np.float64)
            return int(self.rng.choice(m, p=w / w.sum()))
        return int(np.argmax(self.acquisition_values(v)))

    def state_vector(self) -> np.ndarray:
        """The surrogate input ``v`` for the model as it is now."""
        return self.compressor(self.model)

    # --- action ---------------------------------------------------------------------------------------
    def _optimizer(self, j: int) -> torch.optim.Optimizer:
        if j not in self.opts:
            self.opts[j] = self._build(self.candidates[j], f"policy.candidates[{j}]")
        return self.opts[j]

    def _start_cycle(self) -> Event:
        v = self.state_vector()
        mode = self._mode()
        j = self._choose(mode, v)
        prev = self.current
        if self.spec.reset_state:
            self.opts = {}
        self._optimizer(j)
        self.current, self.v, self.losses = j, [float(a) for a in v], []
        return Event(step=self.step_count, kind="iomt_cycle", detail={
            "cycle": self.cycle, "candidate": j, "name": self.labels[j],
            "from": self.labels[prev] if prev is not None else None, "to": self.labels[j],
            "score": self.last_score, "select": mode})

    def _end_cycle(self) -> None:
        assert self.current is not None and self.v is not None
        l0 = self.l_prev if self.l_prev is not None else self.losses[0]
        s = cycle_score(l0, self.losses, self.spec.alpha)
        self.surrogates.add(self.current, np.asarray(self.v), s)
        if self._mode() == "random":
            self.weights[self.current] = max((s + 1.0) / 2.0, float(self.spec.omega_min))
        self.last_score, self.l_prev = s, self.losses[-1]
        self.cycle, self.pos, self.losses = self.cycle + 1, 0, []

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepReport:
        self.step_count += 1
        events: list[Event] = []
        switched = False
        if self.pos == 0:
            prev = self.current
            events.append(self._start_cycle())
            switched = prev is not None and prev != self.current
        assert self.current is not None
        opt = self.opts[self.current]
        lr, name = current_lr(opt), self.labels[self.current]
        loss = optimizer_step(opt, self.model, self.loss_fn, inputs, targets)
        self.losses.append(float(loss))
        self.pos += 1
        if self.pos == self.tau:
            self._end_cycle()
        return StepReport(step=self.step_count, loss=float(loss), lr=lr, optimizer=name, switched=switched,
                          events=events)

    @property
    def active_optimizer(self) -> torch.optim.Optimizer | None:
        return self.opts.get(self.current) if self.current is not None else None

    @property
    def active_name(self) -> str:
        return self.labels[self.current] if self.current is not None else "iomt"

    def state_bytes(self) -> int:
        return sum(optimizer_state_bytes(o) for o in self.opts.values())

    # --- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "step_count": self.step_count, "cycle": self.cycle, "pos": self.pos, "current": self.current,
            "v": self.v, "losses": self.losses, "l_prev": self.l_prev, "last_score": self.last_score,
            "weights": self.weights, "surrogates": self.surrogates.state_dict(),
            "rng": self.rng.bit_generator.state,
            "opts": {j: o.state_dict() for j, o in self.opts.items()},
        })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(state))  # never share buffers with the stepper it came from
        self.step_count, self.cycle, self.pos = int(state["step_count"]), int(state["cycle"]), int(state["pos"])
        self.current = None if state["current"] is None else int(state["current"])
        self.v, self.losses = state["v"], [float(x) for x in state["losses"]]
        self.l_prev, self.last_score = state["l_prev"], state["last_score"]
        self.weights = [float(w) for w in state["weights"]]
        self.surrogates.load_state_dict(state["surrogates"])
        self.rng.bit_generator.state = state["rng"]
        self.opts = {}
        for j, opt_state in state["opts"].items():
            self._optimizer(int(j)).load_state_dict(opt_state)


def _validate_candidates(value: Any, key: str) -> tuple[OptimizerSpec, ...]:
    if value is None:
        value = [dict(c) for c in DEFAULT_CANDIDATES]
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(key, "must be a non-empty list of optimizer specs", value)
    out = tuple(OptimizerSpec.from_mapping(c, f"{key}[{i}]") for i, c in enumerate(value))
    labels = [c.label for c in out]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise ConfigError(f"{key}[{i}]", "duplicate candidate", out[i].as_dict())
    return out


@register_policy
class IOMT(PolicyType[IOMTSpec]):
    """``type: iomt``: every key optional; see the module docstring for their meaning and defaults."""

    name = "iomt"
    keys = ("type", *DEFAULTS)

    @classmethod
    def validate(cls, spec: Mapping[str, Any], key: str) -> IOMTSpec:
        spec = require_mapping(spec, key)
        check_keys(spec, cls.keys, key)
        full = {**DEFAULTS, **spec}
        out: dict[str, Any] = {
            "candidates": _validate_candidates(full["candidates"], f"{key}.candidates"),
            "tau": number(full["tau"], f"{key}.tau", integer=True, low=1),
            "n_ini": number(full["n_ini"], f"{key}.n_ini", integer=True, low=0),
            "omega_min": number(full["omega_min"], f"{key}.omega_min", low=0.0, low_open=True, high=1.0),
            "alpha": number(full["alpha"], f"{key}.alpha", low=0.0),
            "n_components": number(full["n_components"], f"{key}.n_components", integer=True, low=1),
            "compress": choice(full["compress"], ("pca", "rp"), f"{key}.compress"),
            "layers": choice(full["layers"], ("last", "all"), f"{key}.layers"),
            "n_halve": number(full["n_halve"], f"{key}.n_halve", integer=True, low=1),
            "beta": number(full["beta"], f"{key}.beta", low=0.0, high=1.0),
            "use_transferability": boolean(full["use_transferability"], f"{key}.use_transferability"),
            "select": choice(full["select"], ("surrogate", "random", "cyclical"), f"{key}.select"),
            "halving": boolean(full["halving"], f"{key}.halving"),
            "reset_state": boolean(full["reset_state"], f"{key}.reset_state"),
            "seed": number(full["seed"], f"{key}.seed", integer=True, low=0),
            "exploration": choice(full["exploration"], EXPLORATIONS, f"{key}.exploration"),
        }
        for k in ("omega_p", "logme", "leep"):
            value = full[k]
            if not out["use_transferability"]:
                if value is not None:
                    raise ConfigError(f"{key}.{k}", "is only used with use_transferability: true", value)
            elif value is None:
                raise ConfigError(f"{key}.{k}", "is required with use_transferability: true", None, show_value=False)
            elif k == "omega_p":
                number(value, f"{key}.{k}", low=0.0, high=1.0)
            else:
                number(value, f"{key}.{k}")
            out[k] = value
        return IOMTSpec(**out)

    @classmethod
    def build(cls, spec: IOMTSpec, model: nn.Module, loss_fn: LossFn) -> Stepper:
        return IOMTStepper(model, loss_fn, spec)
