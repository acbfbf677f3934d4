"""Optimizers: first-order baselines, second-order preconditioners and learning-rate rules, by name.

Importing this package registers every optimizer; look them up with ``get_optimizer`` / ``build_optimizer``.
"""

from hyperswitch.optim import first_order  # noqa: F401  (registers sgd, sgdm, adam, ...)
from hyperswitch.optim.registry import (
    OptimizerEntry,
    build_optimizer,
    check_optimizer_spec,
    get_optimizer,
    optimizer_names,
    register_optimizer,
    resolve_hparams,
)

__all__ = [
    "OptimizerEntry",
    "build_optimizer",
    "check_optimizer_spec",
    "get_optimizer",
    "optimizer_names",
    "register_optimizer",
    "resolve_hparams",
]
