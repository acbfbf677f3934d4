"""Switching policies: which optimizer steps when. Importing registers every policy type."""

from hyperswitch.switching import iomt, mixer, single, switch  # noqa: F401  (register policy types)
from hyperswitch.switching._base import Event, Stepper, StepReport
from hyperswitch.switching._explain import explain_switch
from hyperswitch.switching._registry import get_policy_type, policy_type_names
from hyperswitch.switching.policy import Policy, load_policy, validate_policy

__all__ = [
    "Event",
    "Policy",
    "StepReport",
    "Stepper",
    "explain_switch",
    "get_policy_type",
    "load_policy",
    "policy_type_names",
    "validate_policy",
]
