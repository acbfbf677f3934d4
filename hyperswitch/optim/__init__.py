"""Optimizers: first-order baselines, second-order preconditioners and learning-rate rules, by name.

Importing this package registers every optimizer; look them up with ``get_optimizer`` / ``build_optimizer``.
"""

# Importing these modules registers their optimizers: sgd, sgdm, adam, ... (first_order); lamb, swats, ...
# (baselines); kfac, foof (kfac); shampoo; ef, ief, sf (natural); gen.
from hyperswitch.optim import baselines, first_order, gen, kfac, natural, shampoo  # noqa: F401
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
