"""One worker's training loop: policy steps, periodic evaluation, divergence, per-step records.

Used in-process by single-worker trials and by ``hyperswitch train``. ``on_eval`` is called at every
evaluation with the metrics so far (the Tune trial reports them); it may raise to stop the run.
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from hyperswitch.config.validate import check_keys, number, require_mapping
from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.switching._base import tensor_bytes
from hyperswitch.workloads import build_workload

TRAIN_DEFAULTS: dict[str, Any] = {"steps": 300, "epochs": None, "eval_every": 25, "target_accuracy": None,
                                  "divergence_loss": 1e6}


def validate_train(spec: Any, key: str = "train") -> dict[str, Any]:
    spec = require_mapping(spec if spec is not None else {}, key)
    check_keys(spec, tuple(TRAIN_DEFAULTS), key)
    full = {**TRAIN_DEFAULTS, **spec}
    if "epochs" in spec and "steps" not in spec:
        full["steps"] = None
    if full["steps"] is not None and full["epochs"] is not None:
        raise ConfigError(f"{key}.epochs", "give either steps or epochs, not both", full["epochs"])
    if full["steps"] is None and full["epochs"] is None:
        raise ConfigError(f"{key}.steps", "steps or epochs is required", None)
    if full["steps"] is not None:
        number(full["steps"], f"{key}.steps", integer=True, low=1)
    if full["epochs"] is not None:
        number(full["epochs"], f"{key}.epochs", integer=True, low=1)
    number(full["eval_every"], f"{key}.eval_every", integer=True, low=1)
    if full["target_accuracy"] is not None:
        number(full["target_accuracy"], f"{key}.target_accuracy", low=0.0, low_open=True, high=1.0)
    number(full["divergence_loss"], f"{key}.divergence_loss", low=0.0, low_open=True)
    return full



@dataclass
class RunResult:
    status: str  # completed | diverged
    steps: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def train_run(
    workload_spec: Mapping[str, Any],
    policy: Policy,
    train_spec: Mapping[str, Any],
    seed: int,
    *,
    device: str | torch.device = "cpu",
    on_eval: Callable[[dict[str, Any], RunResult], None] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> RunResult:
    """Train ``policy`` on the workload for ``train_spec`` steps/epochs with ``seed``."""
    train = validate_train(train_spec)
    device = torch.device(device)
    wl = build_workload(workload_spec, seed, rank=rank, world_size=world_size).to(device)
    stepper = policy.build(wl.model, wl.loss_fn)
    steps_per_epoch = len(wl.train)
    total = train["steps"] if train["steps"] is not None else train["epochs"] * steps_per_epoch
    target = train["target_accuracy"]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    param_bytes = tensor_bytes(list(wl.model.parameters())) * 2  # parameters + gradients

    result = RunResult(status="completed")
    t0 = time.perf_counter()
    step, epoch = 0, 0
    best_acc, time_to_target = -math.inf, None
    peak_bytes = 0
    last_eval: dict[str, float] = {}
    stop = False
    while not stop:
        epoch += 1
        losses: list[float] = []
        for xb, yb in wl.train:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            report = stepper.step(xb, yb)
            step = report.step
            losses.append(report.loss)
            mem = torch.cuda.memory_allocated(device) if cuda else param_bytes + stepper.state_bytes()
            peak_bytes = max(peak_bytes, mem)
            row = {"step": step, "epoch": epoch, "loss": report.loss, "val_loss": None, "val_accuracy": None,
                   "lr": report.lr, "optimizer": report.optimizer, "elapsed_s": time.perf_counter() - t0,
                   "memory_bytes": int(mem)}
            for ev in report.events:
                result.events.append({"step": ev.step, "kind": ev.kind, "detail": ev.detail_json()})
            diverged = not math.isfinite(report.loss) or abs(report.loss) > train["divergence_loss"]
            if diverged or step % train["eval_every"] == 0 or step >= total:
                last_eval = wl.evaluate()
                row.update(last_eval)
                acc = last_eval.get("val_accuracy")
                if acc is not None:
                    best_acc = max(best_acc, acc)
                    if target is not None and time_to_target is None and acc >= target:
                        time_to_target = row["elapsed_s"]
            result.steps.append(row)
            if diverged:
                result.status = "diverged"
                result.events.append({"step": step, "kind": "diverged",
                                      "detail": json.dumps({"loss": str(report.loss)})})
            if diverged or step >= total:
                stop = True
            if row["val_loss"] is not None and on_eval is not None and not stop:  # the final report is the caller's
                result.summary = _summary(result, stepper, last_eval, best_acc, time_to_target, peak_bytes, t0,
                                          step, epoch, wl.train.batch_size, cuda)
                on_eval(row, result)
            if stop:
                break
        if not stop:
            for ev in stepper.end_epoch(epoch, sum(losses) / max(len(losses), 1)):
                result.events.append({"step": ev.step, "kind": ev.kind, "detail": ev.detail_json()})
    result.summary = _summary(result, stepper, last_eval, best_acc, time_to_target, peak_bytes, t0, step, epoch,
                              wl.train.batch_size, cuda)
    return result


def _summary(result: RunResult, stepper: Any, last_eval: Mapping[str, float], best_acc: float,
             time_to_target: float | None, peak_bytes: int, t0: float, step: int, epoch: int, batch_size: int,
             cuda: bool) -> dict[str, Any]:
    wall = time.perf_counter() - t0
    last_loss = result.steps[-1]["loss"] if result.steps else math.nan
    switch_step = next((e["step"] for e in result.events if e["kind"] == "switch"), None)
    return {
        "train_loss": last_loss,
        "val_loss": last_eval.get("val_loss"),
        "val_accuracy": last_eval.get("val_accuracy"),
        "best_val_accuracy": best_acc if math.isfinite(best_acc) else None,
        "steps_done": step,
        "epochs_done": epoch,
        "switch_step": switch_step,
        "time_to_target_s": time_to_target,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated() if cuda else peak_bytes),
        "memory_source": "cuda_max_allocated" if cuda else "cpu_tensor_bytes",
        "peak_rss_bytes": _peak_rss_bytes(),
        "wall_time_s": wall,
        "samples_per_s": step * batch_size / wall if wall > 0 else None,
    }
