"""Mixer (000): K-FAC (Cholesky) -> SGD with momentum, adaptive switcher and corrector, with the paper's
defaults (theta 0.001, K 5, T1 10, mu 0.8). The same stepper as ``switch``; only the defaults differ, so the
ablations are the same file with one key changed: ``switch: never``, ``switch: {at: N}``, ``corrector: {T1: 0}``.
"""

from __future__ import annotations

from hyperswitch.switching._registry import register_policy
from hyperswitch.switching.switch import MIXER_CORRECTOR, Switch


@register_policy
class Mixer(Switch):
    """``type: mixer``: every key optional; defaults are the paper's."""

    name = "mixer"
    required = ()
    defaults = {"phase1": {"name": "kfac", "inverse": "cholesky"}, "phase2": {"name": "sgdm"}}
    corrector_defaults = MIXER_CORRECTOR
    adaptive_defaults = True
