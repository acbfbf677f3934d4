"""A user's own workload, named by import path: ``workload: {name: "package.module:factory", ...}``.

The name is the workload (in policy files, search spaces, ``hyperswitch train --workload``, the results'
``workload`` column), so a user workload is used exactly like a built-in one. ``factory`` is a function

    def factory(seed: int, *, option_a=1, option_b="x", split_seed=0) -> dict

- ``seed`` is the trial seed; the global torch RNG is also seeded with it just before the call, so a model
  built inside the factory is initialised reproducibly.
- Its keyword parameters **with defaults** are the workload's options (any other key in the spec is an
  error naming it); a parameter without a default (other than ``seed``) or ``**kwargs`` is refused.
- hyperswitch adds three options of its own: ``batch_size`` (default 64; the global batch, sharded across
  data-parallel workers like every workload's), ``dataset_fraction`` (default 1.0: a seeded subset of the
  training examples) and ``split_seed`` (default 0: seeds that subset, and is passed to the factory when it
  declares a ``split_seed`` parameter, so that the factory can fix its own train/validation split with it).
  A factory that declares one of these itself sets its default and receives it too.
- It returns a mapping ``{"model": nn.Module, "loss_fn": callable(outputs, targets) -> scalar, "train": DATA,
  "val": DATA, "task": "classification" | "regression"}`` (``task`` optional, default classification; ``loss``
  is accepted for ``loss_fn``), or the tuple ``(model, loss_fn, train, val)``. ``DATA`` is a pair of tensors
  (or arrays) ``(x, y)`` with one example per row, or any iterable of ``(x, y)`` batches such as a
  ``torch.utils.data.DataLoader``: it is read once, in its own order, into memory. Training then uses
  hyperswitch's seeded ``Batches`` of ``batch_size`` (the loader's own batching and shuffling are not used),
  which is what makes data order, resume and data-parallel sharding exact.
- Classification: the model's outputs have the classes on the last dimension (accuracy = argmax matches).
  Regression: no accuracy (``val_accuracy`` null); search on ``val_loss``.
- Bad option values: raise ``hyperswitch.errors.ConfigError(key, rule, value)`` from the factory; it reaches
  the user as one line like every other configuration error.

Import: ``package.module`` is imported with the current working directory on ``sys.path`` (it is added if
missing, as web servers do for their app modules), so running from the project folder finds the project's own
modules. Workers of an embedded local Ray start in the driver's working directory and import it the same way.
See ``examples/user_workload.py``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.errors import ConfigError
from hyperswitch.workloads._base import Workload, WorkloadEntry
from hyperswitch.workloads._common import check_common, fraction_of, make_batches

MANAGED: dict[str, Any] = {"batch_size": 64, "dataset_fraction": 1.0, "split_seed": 0}
_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def is_user_workload(name: Any) -> bool:
    return isinstance(name, str) and ":" in name


def _import_factory(name: str, key: str) -> Callable[..., Any]:
    if not _NAME.match(name):
        raise ConfigError(key, "a user workload is named 'package.module:function'", name)
    module_name, attr = name.split(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any failure to import is the user's to fix: one line
        text = " ".join(str(exc).split())[:200]
        raise ConfigError(key, f"cannot import module {module_name!r} ({type(exc).__name__}: {text})", name) from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConfigError(key, f"module {module_name!r} has no function {attr!r}", name)
    return factory


def module_root(name: str) -> str:
    """The folder of the top-level package (or the file of the top-level module) that ``package.module:function``
    imports from: what a Ray cluster's workers need shipped (``runtime_env`` ``py_modules``) to import it."""
    _import_factory(name, "workload.name")
    module = importlib.import_module(name.split(":")[0])
    top = sys.modules[module.__name__.split(".")[0]]
    if hasattr(top, "__path__"):  # a package, regular or namespace: the folder that holds this module
        target = os.path.realpath(module.__file__ or "")
        for folder in top.__path__:
            if target.startswith(os.path.realpath(folder) + os.sep):
                return folder
        return next(iter(top.__path__))
    return str(top.__file__)


def _options(factory: Callable[..., Any], name: str, key: str) -> tuple[dict[str, Any], set[str]]:
    """(defaults of the options, names of the factory's own keyword parameters)."""
    params = list(inspect.signature(factory).parameters.values())
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise ConfigError(key, "the factory's first parameter must be the seed (positional)", name)
    declared: dict[str, Any] = {}
    for p in params[1:]:
        if p.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            raise ConfigError(key, f"the factory's options must be named keyword parameters, not {p}", name)
        if p.default is inspect.Parameter.empty:
            raise ConfigError(key, f"the factory's option {p.name!r} needs a default", name)
        declared[p.name] = p.default
    return {**MANAGED, **declared}, set(declared)


def user_workload(name: str, key: str = "workload.name") -> WorkloadEntry:
    """The registry entry of the user workload ``name`` (``package.module:factory``)."""
    factory = _import_factory(name, key)
    defaults, declared = _options(factory, name, key)
    doc = (inspect.getdoc(factory) or f"user workload {name}").strip().splitlines()[0]
    return WorkloadEntry(name, partial(_build, factory, name, declared), defaults,
                         lambda spec, k: check_common(spec, k, val_fraction=None), doc, task=None)


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def _data(value: Any, what: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors from a pair of tensors/arrays or from an iterable of ``(x, y)`` batches."""
    key = "workload.name"
    if isinstance(value, tuple | list) and len(value) == 2 and not isinstance(value[0], tuple | list):
        x, y = _tensor(value[0]), _tensor(value[1])
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        xs, ys = [], []
        for batch in value:
            if not isinstance(batch, tuple | list) or len(batch) != 2:
                raise ConfigError(key, f"the factory's {what} batches must be (inputs, targets) pairs", name)
            xs.append(_tensor(batch[0]))
            ys.append(_tensor(batch[1]))
        if not xs:
            raise ConfigError(key, f"the factory's {what} data are empty", name)
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        raise ConfigError(key, f"the factory's {what} must be (x, y) tensors or an iterable of (x, y) batches "
                          f"such as a DataLoader, not {type(value).__name__}", name)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ConfigError(key, f"the factory's {what} inputs and targets must have the same number of rows "
                          f"(> 0), got {x.shape[0]} and {y.shape[0]}", name)
    if x.is_floating_point() and x.dtype == torch.float64:
        x = x.float()  # like the built-in workloads; a model wanting float64 can convert in forward
    return x, y


def _build(factory: Callable[..., Any], name: str, declared: set[str], seed: int, *, rank: int = 0,
           world_size: int = 1, batch_size: int, dataset_fraction: float, split_seed: int,
           **options: Any) -> Workload:
    managed = {"batch_size": batch_size, "dataset_fraction": dataset_fraction, "split_seed": split_seed}
    kwargs = {**options, **{k: v for k, v in managed.items() if k in declared}}
    torch.manual_seed(seed)
    out = factory(seed, **kwargs)
    key = "workload.name"
    if isinstance(out, Mapping):
        unknown = set(out) - {"model", "loss_fn", "loss", "train", "val", "task"}
        missing = {"model", "train", "val"} - set(out)
        if unknown or missing or ("loss_fn" in out) == ("loss" in out):
            raise ConfigError(key, "the factory must return {model, loss_fn, train, val[, task]}; got keys "
                              f"{sorted(out)}", name)
        model, loss_fn = out["model"], out.get("loss_fn", out.get("loss"))
        train, val, task = out["train"], out["val"], out.get("task", "classification")
    elif isinstance(out, tuple) and len(out) == 4:
        (model, loss_fn, train, val), task = out, "classification"
    else:
        raise ConfigError(key, "the factory must return a mapping {model, loss_fn, train, val[, task]} or a tuple "
                          f"(model, loss_fn, train, val), not {type(out).__name__}", name)
    if not isinstance(model, nn.Module):
        raise ConfigError(key, f"the factory's model must be a torch.nn.Module, not {type(model).__name__}", name)
    if not callable(loss_fn):
        raise ConfigError(key, "the factory's loss_fn must be callable(outputs, targets)", name)
    if task not in ("classification", "regression"):
        raise ConfigError(key, "the factory's task must be classification or regression", task)
    xtr, ytr = _data(train, "train", name)
    xval, yval = _data(val, "val", name)
    keep = torch.from_numpy(fraction_of(xtr.shape[0], float(dataset_fraction), int(split_seed)))
    return Workload(name=name, model=model, loss_fn=loss_fn,
                    train=make_batches(xtr[keep], ytr[keep], batch_size, seed, rank=rank, world_size=world_size),
                    val_x=xval, val_y=yval, task=task)
