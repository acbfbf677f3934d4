"""Policies: a validated spec that builds a Stepper; policy files load into them (safe YAML)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from hyperswitch.config.validate import check_keys, require_mapping
from hyperswitch.config.yamlio import load_file
from hyperswitch.errors import ConfigError
from hyperswitch.switching._base import LossFn, Stepper
from hyperswitch.switching._registry import get_policy_type
from hyperswitch.switching._spec import PolicySpec

FILE_KEYS = ("name", "description", "policy", "workload", "train", "provenance")


def validate_policy(spec: Any, key: str = "policy") -> PolicySpec:
    """Check a policy spec, values included, into its type's typed spec (a ``PolicySpec`` is returned as is: it
    was checked when it was built)."""
    if isinstance(spec, PolicySpec):
        return spec
    spec = require_mapping(spec, key)
    if "type" not in spec:
        raise ConfigError(f"{key}.type", "is required", None, show_value=False)
    return get_policy_type(spec["type"], f"{key}.type").validate(spec, key)


@dataclass
class Policy:
    """A validated policy. ``build(model, loss_fn)`` gives the Stepper that trains ``model``; ``spec`` is its
    type's frozen spec (``spec.as_dict()``: the plain mapping)."""

    spec: PolicySpec
    name: str | None = None
    description: str | None = None
    workload: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def from_spec(cls, spec: PolicySpec | Mapping[str, Any], **kwargs: Any) -> Policy:
        return cls(spec=validate_policy(spec), **kwargs)

    @property
    def type(self) -> str:
        return self.spec.type

    def optimizer_names(self) -> list[str]:
        return self.spec.optimizer_names()

    def build(self, model: nn.Module, loss_fn: LossFn) -> Stepper:
        return get_policy_type(self.type).build(self.spec, model, loss_fn)


def load_policy(path: str | Path) -> Policy:
    """Load a policy file (YAML with ``policy:`` and optional name, description, workload, train,
    provenance). Errors name the file, key, rule and value."""
    path = Path(path)
    doc, text = load_file(path, "policy file")  # one-line errors: unreadable, not UTF-8, file:line:col of bad YAML
    try:
        doc = require_mapping(doc, "(top level)")
        check_keys(doc, FILE_KEYS, "", required=("policy",))
        spec = validate_policy(doc["policy"], "policy")
        from hyperswitch.workloads import validate_workload

        workload = validate_workload(doc["workload"], "workload") if "workload" in doc else None
        return Policy(
            spec=spec,
            name=str(doc.get("name") or path.stem),
            description=doc.get("description"),
            workload=workload,
            train=dict(require_mapping(doc["train"], "train")) if "train" in doc else None,
            provenance=dict(require_mapping(doc.get("provenance") or {}, "provenance")),
            source=str(path),
        )
    except ConfigError as exc:
        raise exc.with_file(str(path)) from None
