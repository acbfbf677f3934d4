"""Switching policies: which optimizer steps when. Importing registers every policy type.

A policy spec is validated once into its type's frozen dataclass (``SingleSpec``, ``SwitchSpec`` for ``switch``
and ``mixer``, ``IOMTSpec``), built from the shared parts ``OptimizerSpec``, ``LrRule``, ``Corrector`` and the
switch rules ``NeverSwitch`` / ``FixedSwitch`` / ``AdaptiveSwitch``; ``spec.as_dict()`` is its plain mapping.
"""

from hyperswitch.switching import iomt, mixer, single, switch  # noqa: F401  (register policy types)
from hyperswitch.switching._base import Event, Stepper, StepReport
from hyperswitch.switching._explain import explain_switch
from hyperswitch.switching._registry import get_policy_type, policy_type_names
from hyperswitch.switching._spec import (
    AdaptiveSwitch,
    Corrector,
    FixedSwitch,
    LrRule,
    NeverSwitch,
    OptimizerSpec,
    PolicySpec,
    SwitchRule,
)
from hyperswitch.switching.iomt import IOMTSpec
from hyperswitch.switching.policy import Policy, load_policy, validate_policy
from hyperswitch.switching.single import SingleSpec
from hyperswitch.switching.switch import SwitchSpec

__all__ = [
    "AdaptiveSwitch",
    "Corrector",
    "Event",
    "FixedSwitch",
    "IOMTSpec",
    "LrRule",
    "NeverSwitch",
    "OptimizerSpec",
    "Policy",
    "PolicySpec",
    "SingleSpec",
    "StepReport",
    "Stepper",
    "SwitchRule",
    "SwitchSpec",
    "explain_switch",
    "get_policy_type",
    "load_policy",
    "policy_type_names",
    "validate_policy",
]
