"""When to switch (decision only): fixed step/epoch, never, or Mixer's adaptive loss-change-rate rule.

A rule observes losses (``observe_step`` after every update with the mini-batch loss, ``observe_epoch`` after
every epoch with the epoch's mean loss) and answers whether the next update should be the first of phase 2.

Adaptive rule (ALGORITHMS.md §3): ``r_t = |L_{t−1} − L_t| / max(|L_{t−1}|, 1e-12)``; switch when the mean of
the last ``K`` rates is below ``theta``. With ``unit: step`` the losses are mini-batch losses, with
``unit: epoch`` the epochs' mean losses. Fixed rule: ``at: N`` switches after update (or epoch) N.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from hyperswitch.config.validate import check_keys, choice, number
from hyperswitch.errors import ConfigError

ADAPTIVE_DEFAULTS = {"theta": 0.001, "K": 5, "unit": "step"}


def validate_switch(value: Any, key: str, *, adaptive_defaults: bool = False) -> dict[str, Any] | str:
    """``never``; ``{at: N, unit}``; or ``{theta, K, unit}``. Normalised with defaults filled in."""
    if value == "never":
        return "never"
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
        return {"at": number(value["at"], f"{key}.at", integer=True, low=0), "unit": unit}
    if not adaptive_defaults and not ("theta" in value or "K" in value):
        raise ConfigError(key, "give 'at: N' (fixed) or 'theta'/'K' (adaptive), or 'never'", dict(value))
    return {
        "theta": number(value.get("theta", ADAPTIVE_DEFAULTS["theta"]), f"{key}.theta", low=0.0, low_open=True),
        "K": number(value.get("K", ADAPTIVE_DEFAULTS["K"]), f"{key}.K", integer=True, low=1),
        "unit": unit,
    }


class Switcher:
    """Decides the switch from observed losses. Stateless specs in, a small state dict out."""

    def __init__(self, spec: Mapping[str, Any] | str) -> None:
        self.spec = spec
        self.kind = "never" if spec == "never" else ("fixed" if "at" in spec else "adaptive")
        self.unit = None if spec == "never" else spec["unit"]
        self.prev: float | None = None
        k = int(spec["K"]) if self.kind == "adaptive" else 1
        self.rates: deque[float] = deque(maxlen=k)
        self.due = self.kind == "fixed" and spec["at"] == 0
        self.score: float | None = None  # mean rate at the decision (adaptive)

    def _rate(self, loss: float) -> None:
        if not math.isfinite(loss):
            self.prev = None
            return
        if self.prev is not None:
            self.rates.append(abs(self.prev - loss) / max(abs(self.prev), 1e-12))
        self.prev = loss
        if self.kind == "adaptive" and len(self.rates) == self.rates.maxlen:
            mean = sum(self.rates) / len(self.rates)
            if mean < self.spec["theta"]:
                self.due, self.score = True, mean

    def _observe(self, unit: str, index: int, loss: float) -> bool:
        if self.due or self.unit != unit:
            return self.due
        if self.kind == "fixed":
            self.due = index >= self.spec["at"]
        else:
            self._rate(loss)
        return self.due

    def observe_step(self, step: int, loss: float) -> bool:
        return self._observe("step", step, loss)

    def observe_epoch(self, epoch: int, mean_loss: float) -> bool:
        return self._observe("epoch", epoch, mean_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"prev": self.prev, "rates": list(self.rates), "due": self.due, "score": self.score}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.prev = state["prev"]
        self.rates.clear()
        self.rates.extend(state["rates"])
        self.due, self.score = bool(state["due"]), state["score"]
