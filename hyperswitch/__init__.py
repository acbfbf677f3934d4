"""hyperswitch: search hyperparameters and optimizer-switching policies on Ray Tune + Optuna.

``hyperswitch.load_policy(path) -> Policy``; ``Policy.build(model, loss_fn) -> Stepper``;
``Stepper.step(inputs, targets) -> StepReport``. Imported lazily, so ``import hyperswitch`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Policy", "StepReport", "Stepper", "__version__", "load_policy"]


def __getattr__(name: str) -> Any:
    if name in ("Policy", "StepReport", "Stepper", "load_policy"):
        from hyperswitch import switching

        return getattr(switching, name)
    raise AttributeError(f"module 'hyperswitch' has no attribute {name!r}")
