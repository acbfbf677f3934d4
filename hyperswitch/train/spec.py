"""The ``train:`` block of a search space or policy file, validated once into a typed, frozen ``TrainSpec``.

```yaml
train: {steps: 300, eval_every: 25, target_accuracy: 0.95, divergence_loss: 1.0e6, checkpoint_every: null}
```
``steps`` or ``epochs`` (not both; ``epochs`` alone sets ``steps`` to null); ``eval_every``: steps between
evaluations; ``target_accuracy``: the accuracy whose first crossing is ``time_to_target_s`` (null: none);
``target_loss``: instead, the validation loss at or below which the target is reached (regression tasks, the
curves autoencoder; give one target, not both);
``divergence_loss``: a loss above it (or not finite) stops the run as diverged; ``checkpoint_every``: see
:meth:`TrainSpec.from_mapping`.

Built at the boundary (``parse_space``, ``hyperswitch train``; ``train_run`` still accepts a mapping and
validates it) and read by attribute from there on. ``as_dict()`` is the dict that used to travel instead,
key for key and value for value (the values as the YAML gave them: ``steps: 300.0`` stays ``300.0``), so
what is written from it (exported policy files) is unchanged. Light: no torch, so ``search.space`` imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from hyperswitch.config.validate import check_keys, number, require_mapping
from hyperswitch.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TrainSpec:
    steps: int | None = 300
    epochs: int | None = None
    eval_every: int = 25
    target_accuracy: float | None = None
    target_loss: float | None = None
    divergence_loss: float = 1e6
    checkpoint_every: int | None = None

    @classmethod
    def from_mapping(cls, spec: Any, key: str = "train") -> TrainSpec:
        """Validate a ``train:`` mapping (``None``: every default); errors are ``ConfigError`` under ``key``.

        ``checkpoint_every``: steps between checkpoints, a multiple of ``eval_every`` (checkpoints are taken
        at evaluations); ``null`` (default) checkpoints at every evaluation, ``0`` never."""
        spec = require_mapping(spec if spec is not None else {}, key)
        check_keys(spec, tuple(TRAIN_DEFAULTS), key)
        full = {**TRAIN_DEFAULTS, **spec}
        if "epochs" in spec and "steps" not in spec:
            full["steps"] = None
        if full["steps"] is not None and full["epochs"] is not None:
            raise ConfigError(f"{key}.epochs", "give either steps or epochs, not both", full["epochs"])
        if full["steps"] is None and full["epochs"] is None:
            raise ConfigError(f"{key}.steps", "steps or epochs is required", None, show_value=False)
        if full["steps"] is not None:
            number(full["steps"], f"{key}.steps", integer=True, low=1)
        if full["epochs"] is not None:
            number(full["epochs"], f"{key}.epochs", integer=True, low=1)
        number(full["eval_every"], f"{key}.eval_every", integer=True, low=1)
        if full["target_accuracy"] is not None:
            number(full["target_accuracy"], f"{key}.target_accuracy", low=0.0, low_open=True, high=1.0)
        if full["target_loss"] is not None:
            number(full["target_loss"], f"{key}.target_loss")
            if full["target_accuracy"] is not None:
                raise ConfigError(f"{key}.target_loss", "give either target_accuracy or target_loss, not both",
                                  full["target_loss"])
        number(full["divergence_loss"], f"{key}.divergence_loss", low=0.0, low_open=True)
        ce = full["checkpoint_every"]
        if ce is not None:
            number(ce, f"{key}.checkpoint_every", integer=True, low=0)
            if ce and ce % full["eval_every"]:
                raise ConfigError(f"{key}.checkpoint_every", f"must be a multiple of eval_every "
                                  f"({full['eval_every']}) or 0 (checkpoints are taken at evaluations)", ce)
        return cls(**{str(k): v for k, v in full.items()})

    @classmethod
    def coerce(cls, spec: TrainSpec | Mapping[str, Any] | None, key: str = "train") -> TrainSpec:
        """``spec`` itself if it is a ``TrainSpec`` (validated when it was built), else validated."""
        return spec if isinstance(spec, TrainSpec) else cls.from_mapping(spec, key)

    def as_dict(self) -> dict[str, Any]:
        """Every key, in the order of ``TRAIN_DEFAULTS`` (what a policy file's ``train:`` records)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def total_steps(self, steps_per_epoch: int) -> int:
        """The step the run ends at: ``steps``, or ``epochs`` full epochs."""
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None  # from_mapping requires one of them
        return self.epochs * steps_per_epoch

    def checkpoint_due(self, step: int) -> bool:
        """Whether the evaluation at ``step`` also takes a checkpoint."""
        if self.checkpoint_every is None:
            return True
        return bool(self.checkpoint_every) and step % self.checkpoint_every == 0


TRAIN_DEFAULTS: dict[str, Any] = TrainSpec().as_dict()


def validate_train(spec: Any, key: str = "train") -> TrainSpec:
    """:meth:`TrainSpec.from_mapping`."""
    return TrainSpec.from_mapping(spec, key)
