"""When to switch (decision only): fixed step/epoch, never, or Mixer's adaptive loss-change-rate rule.

A rule observes losses (``observe_step`` after every update with the mini-batch loss, ``observe_epoch`` after
every epoch with the epoch's mean loss) and answers whether the next update should be the first of phase 2.

Adaptive rule (docs/algorithms.md#switcher): ``r_t = |L_{t−1} − L_t| / max(|L_{t−1}|, 1e-12)``; switch when
the mean of the last ``K`` rates is below ``theta``. With ``unit: step`` the losses are mini-batch losses, with
``unit: epoch`` the epochs' mean losses. Fixed rule: ``at: N`` switches after update (or epoch) N.

What the rule saw is kept with its state (``report()``, in ``state_dict``): for the adaptive rule the number of
full windows it checked, the lowest mean rate among them and where (the ``unit`` index and the update count
``step`` it was observed after), the latest mean, and, when it fired, the mean that fired it and where. So a run
that never switches can say how close it came.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from hyperswitch.config.validate import check_keys, choice, number
from hyperswitch.errors import ConfigError
from hyperswitch.switching._spec import AdaptiveSwitch, FixedSwitch, NeverSwitch, SwitchRule

ADAPTIVE_DEFAULTS = {"theta": 0.001, "K": 5, "unit": "step"}
STATISTIC = "mean loss-change rate |L[t-1] - L[t]| / |L[t-1]| over the last K {unit}s"


def validate_switch(value: Any, key: str, *, adaptive_defaults: bool = False) -> SwitchRule:
    """``never``; ``{at: N, unit}``; or ``{theta, K, unit}``. Normalised with defaults filled in."""
    if isinstance(value, NeverSwitch | FixedSwitch | AdaptiveSwitch):
        return value
    if value == "never":
        return NeverSwitch()
    if value is None and adaptive_defaults:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be 'never', {at: N, unit: step|epoch} or {theta: x, K: n, unit: step|epoch}",
                          value)
    check_keys(value, ("at", "theta", "K", "unit"), key)
    unit = choice(value.get("unit", "step"), ("step", "epoch"), f"{key}.unit")
    if "at" in value:
        for k in ("theta", "K"):
            if k in value:
                raise ConfigError(f"{key}.{k}", "cannot be combined with a fixed 'at'", value[k])
        return FixedSwitch(at=number(value["at"], f"{key}.at", integer=True, low=0), unit=unit)
    if not adaptive_defaults and not ("theta" in value or "K" in value):
        raise ConfigError(key, "give 'at: N' (fixed) or 'theta'/'K' (adaptive), or 'never'", dict(value))
    return AdaptiveSwitch(
        theta=number(value.get("theta", ADAPTIVE_DEFAULTS["theta"]), f"{key}.theta", low=0.0, low_open=True),
        K=number(value.get("K", ADAPTIVE_DEFAULTS["K"]), f"{key}.K", integer=True, low=1),
        unit=unit,
    )


class Switcher:
    """Decides the switch from observed losses. A validated rule in, a small state dict out."""

    def __init__(self, rule: SwitchRule) -> None:
        self.rule = rule
        self.kind = rule.kind
        self.unit: str | None = None if isinstance(rule, NeverSwitch) else rule.unit
        self.prev: float | None = None
        self.rates: deque[float] = deque(maxlen=rule.K if isinstance(rule, AdaptiveSwitch) else 1)
        self.due = isinstance(rule, FixedSwitch) and rule.at == 0
        self.score: float | None = None  # mean rate at the decision (adaptive)
        # What the rule saw (adaptive): windows checked, the lowest mean and the latest, each with (index, step)
        # where index counts in the rule's unit and step is the update after which it was observed.
        self.checks = 0
        self.lowest: tuple[float, int, int] | None = None
        self.latest: tuple[float, int, int] | None = None
        self.fired_at: tuple[int, int] | None = None  # (index, step) of the observation that fired the rule

    def _rate(self, index: int, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            self.prev = None
            return
        if self.prev is not None:
            self.rates.append(abs(self.prev - loss) / max(abs(self.prev), 1e-12))
        self.prev = loss
        if isinstance(self.rule, AdaptiveSwitch) and len(self.rates) == self.rates.maxlen:
            mean = sum(self.rates) / len(self.rates)
            self.checks += 1
            self.latest = (mean, index, step)
            if self.lowest is None or mean < self.lowest[0]:
                self.lowest = (mean, index, step)
            if mean < self.rule.theta:
                self.due, self.score, self.fired_at = True, mean, (index, step)

    def _observe(self, unit: str, index: int, loss: float, step: int) -> bool:
        if self.due or self.unit != unit:
            return self.due
        if isinstance(self.rule, FixedSwitch):
            self.due = index >= self.rule.at
            if self.due:
                self.fired_at = (index, step)
        else:
            self._rate(index, step, loss)
        return self.due

    def observe_step(self, step: int, loss: float) -> bool:
        return self._observe("step", step, loss, step)

    def observe_epoch(self, epoch: int, mean_loss: float, step: int | None = None) -> bool:
        """``step``: the update count at the end of the epoch (for the report; the epoch itself if not given)."""
        return self._observe("epoch", epoch, mean_loss, epoch if step is None else step)

    def report(self) -> dict[str, Any]:
        """What the rule decided and saw, JSON-serialisable. ``fired``; ``rule`` (never | fixed | adaptive).

        Adaptive: ``statistic`` (its name), ``unit``, ``K``, ``threshold`` (theta; the rule fires when the
        statistic is below it), ``checks`` (full windows of K rates checked), ``closest`` / ``closest_at_step``
        (the lowest statistic seen and the update after which it was observed; ``closest_at_epoch`` too with
        ``unit: epoch``), ``last`` / ``last_at_step``; when fired, ``value`` / ``at_step`` (``at_epoch``): the
        statistic that fired it and where (the switch is the next update). Fixed: ``at``, ``unit``, ``at_step``.
        """
        rule = self.rule
        if isinstance(rule, NeverSwitch):
            return {"fired": False, "rule": "never"}
        if isinstance(rule, FixedSwitch):
            out: dict[str, Any] = {"fired": self.due, "rule": "fixed", "unit": self.unit, "at": rule.at}
            if self.fired_at is not None:
                out["at_step"] = self.fired_at[1]
            return out
        out = {"fired": self.due, "rule": "adaptive", "statistic": STATISTIC.format(unit=self.unit),
               "unit": self.unit, "K": int(rule.K), "threshold": rule.theta, "checks": self.checks,
               "closest": None, "closest_at_step": None, "last": None, "last_at_step": None}
        for name, seen in (("closest", self.lowest), ("last", self.latest)):
            if seen is not None:
                out[name], out[f"{name}_at_step"] = seen[0], seen[2]
                if self.unit == "epoch":
                    out[f"{name}_at_epoch"] = seen[1]
        if self.due and self.fired_at is not None:
            out["value"], out["at_step"] = self.score, self.fired_at[1]
            if self.unit == "epoch":
                out["at_epoch"] = self.fired_at[0]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"prev": self.prev, "rates": list(self.rates), "due": self.due, "score": self.score,
                "checks": self.checks, "lowest": self.lowest, "latest": self.latest, "fired_at": self.fired_at}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.prev = state["prev"]
        self.rates.clear()
        self.rates.extend(state["rates"])
        self.due, self.score = bool(state["due"]), state["score"]
        # Checkpoints written before the report existed lack these: what was seen before them is unknown.
        self.checks = int(state.get("checks", 0))
        self.lowest = _triple(state.get("lowest"))
        self.latest = _triple(state.get("latest"))
        fired = state.get("fired_at")
        self.fired_at = (int(fired[0]), int(fired[1])) if fired is not None else None


def _triple(value: Any) -> tuple[float, int, int] | None:
    return None if value is None else (float(value[0]), int(value[1]), int(value[2]))
