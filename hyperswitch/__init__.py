"""hyperswitch: search hyperparameters and optimizer-switching policies on Ray Tune + Optuna.

``hyperswitch.load_policy(path) -> Policy``; ``Policy.build(model, loss_fn) -> Stepper``;
``Stepper.step(inputs, targets) -> StepReport``. ``hyperswitch.sweep(space, storage=..., samples=...) -> Study``
runs a sweep (``search.api``); ``hyperswitch.open_study(path) -> Study`` reads one as pandas. Imported lazily,
so ``import hyperswitch`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Policy", "StepReport", "Stepper", "Study", "__version__", "load_policy", "load_space", "open_study",
           "sweep"]


def __getattr__(name: str) -> Any:
    if name in ("Policy", "StepReport", "Stepper", "load_policy"):
        from hyperswitch import switching

        return getattr(switching, name)
    if name in ("sweep", "load_space"):
        from hyperswitch.search import api

        return getattr(api, name)
    if name in ("open_study", "Study"):
        from hyperswitch.results import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'hyperswitch' has no attribute {name!r}")
