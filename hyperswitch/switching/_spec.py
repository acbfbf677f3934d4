"""Validated policy specs: small frozen dataclasses built once at the boundary (a policy file, a trial's
instantiated template) and read by attribute from there on.

``PolicySpec`` is the base of each policy type's own spec (``SingleSpec``, ``SwitchSpec``, ``IOMTSpec``, in
their modules); the parts several types share live here: ``OptimizerSpec`` (an optimizer by registry name and
the hyperparameters the spec gives), ``LrRule`` (GeN around every optimizer a policy builds), ``Corrector``
(the switch's fusion period) and the switch rules ``NeverSwitch``, ``FixedSwitch``, ``AdaptiveSwitch``.

``as_dict()`` gives the plain mapping that used to travel instead, key for key and value for value; it is what
pickles into a JSON-like record (exported files, reports) and what ``validate`` accepts back unchanged.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from hyperswitch.config.validate import check_keys, choice, number, require_mapping
from hyperswitch.errors import ConfigError

Unit = Literal["step", "epoch"]


class PolicySpec(abc.ABC):
    """A validated policy spec. ``type`` is the policy type's registry name (``policy.type``)."""

    type: str

    @abc.abstractmethod
    def as_dict(self) -> dict[str, Any]:
        """The spec as the plain mapping it was validated into (``type`` first)."""

    @abc.abstractmethod
    def optimizer_names(self) -> list[str]:
        """The names of the optimizers it uses, for labels (each once, in order of first use)."""


@dataclass(frozen=True, slots=True)
class OptimizerSpec:
    """``{name: adam, lr: 0.001}``: the registry name and the hyperparameters given (values checked by building
    the optimizer once on a probe model; the others take the registry's defaults), in the spec's order."""

    name: str
    hparams: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, spec: Any, key: str) -> OptimizerSpec:
        """Check the name, keys and values (by constructing it on the probe model)."""
        from hyperswitch.switching._probe import check_optimizer_values

        if isinstance(spec, OptimizerSpec):
            spec = spec.as_dict()
        checked = check_optimizer_values(spec, key)
        return cls(name=str(checked["name"]), hparams={k: v for k, v in checked.items() if k != "name"})

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.hparams}

    @property
    def label(self) -> str:
        """``sgdm(lr=0.01)``: the name and the spec's own hyperparameters, in the spec's order."""
        hp = ", ".join(f"{k}={v}" for k, v in self.hparams.items())
        return f"{self.name}({hp})" if hp else self.name


GEN_KEYS = ("name", "phi", "gamma", "lr0", "clip", "fit")
_GEN_REQUIRED_VALUE = ("phi", "gamma", "fit")  # GeN has a default for each; null is not one of their values


@dataclass(frozen=True, slots=True)
class LrRule:
    """``lr_rule: {name: gen, phi: 8, gamma: 0.9, lr0: ..., clip: ..., fit: one_sided}``: GeN around every
    optimizer the policy builds. A key left out (None here) takes GeN's default; the values are checked when
    the wrapped optimizers are probed."""

    name: str = "gen"
    phi: Any = None
    gamma: Any = None
    lr0: Any = None
    clip: Any = None
    fit: Any = None

    @classmethod
    def from_mapping(cls, value: Any, key: str) -> LrRule:
        if isinstance(value, LrRule):
            return value
        value = require_mapping(value, key)
        choice(value.get("name"), ("gen",), f"{key}.name")
        check_keys(value, GEN_KEYS, key)
        for k in _GEN_REQUIRED_VALUE:
            if k in value and value[k] is None:
                raise ConfigError(f"{key}.{k}", "must have a value (leave the key out for GeN's default)", None,
                                  show_value=False)
        return cls(**{str(k): v for k, v in value.items()})

    def params(self) -> dict[str, Any]:
        """GeN's keyword arguments given by the rule (in ``GEN_KEYS`` order)."""
        return {k: getattr(self, k) for k in GEN_KEYS[1:] if getattr(self, k) is not None}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def wrap(self, spec: OptimizerSpec) -> OptimizerSpec:
        """GeN around ``spec``."""
        return OptimizerSpec(name="gen", hparams={"base": spec.name, "base_params": dict(spec.hparams),
                                                  **self.params()})


def wrap_spec(spec: OptimizerSpec, lr_rule: LrRule | None) -> OptimizerSpec:
    """The optimizer spec to build: ``spec`` itself, or GeN around it."""
    return spec if lr_rule is None else lr_rule.wrap(spec)


@dataclass(frozen=True, slots=True)
class Corrector:
    """The switch's fusion period (docs/algorithms.md#corrector): ``T1`` updates of ``mu·g + (1 − mu)·d_second``
    through a momentum buffer with ``beta``; ``T1: 0`` switches directly."""

    T1: int
    mu: float
    beta: float

    KEYS: ClassVar[tuple[str, ...]] = ("T1", "mu", "beta")

    @classmethod
    def from_mapping(cls, value: Any, key: str, defaults: Corrector) -> Corrector:
        if isinstance(value, Corrector):
            return value
        value = require_mapping(value if value is not None else {}, key)
        check_keys(value, cls.KEYS, key)
        full = {**defaults.as_dict(), **value}
        return cls(T1=number(full["T1"], f"{key}.T1", integer=True, low=0),
                   mu=number(full["mu"], f"{key}.mu", low=0.0, high=1.0),
                   beta=number(full["beta"], f"{key}.beta", low=0.0, high=1.0))

    def as_dict(self) -> dict[str, Any]:
        return {"T1": self.T1, "mu": self.mu, "beta": self.beta}


@dataclass(frozen=True, slots=True)
class NeverSwitch:
    """``switch: never``."""

    kind: ClassVar[str] = "never"

    def as_value(self) -> str:
        return "never"


@dataclass(frozen=True, slots=True)
class FixedSwitch:
    """``switch: {at: N, unit: step|epoch}``: phase 2 from the update after the N-th step (or epoch)."""

    at: int
    unit: Unit = "step"
    kind: ClassVar[str] = "fixed"

    def as_value(self) -> dict[str, Any]:
        return {"at": self.at, "unit": self.unit}


@dataclass(frozen=True, slots=True)
class AdaptiveSwitch:
    """``switch: {theta, K, unit}``: Mixer's rule (docs/algorithms.md#switcher)."""

    theta: float
    K: int
    unit: Unit = "step"
    kind: ClassVar[str] = "adaptive"

    def as_value(self) -> dict[str, Any]:
        return {"theta": self.theta, "K": self.K, "unit": self.unit}


SwitchRule = NeverSwitch | FixedSwitch | AdaptiveSwitch
