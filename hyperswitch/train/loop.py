"""One worker's training loop: policy steps, periodic evaluation, divergence, checkpoints, per-step records.

Used in-process by single-worker trials and ``hyperswitch train``, and on every worker of the data-parallel
group (``train.group``) of a multi-worker trial (``rank``/``world_size``; the model is wrapped in DDP when a
process group is up).
``on_eval(row, result, state)`` is called at every evaluation but the last with the metrics so far; ``state``
is a checkpoint (a dict for ``torch.save``) at the steps ``checkpoint_every`` asks for, else ``None``.
``resume`` takes such a state and continues exactly where it was taken: same parameters, optimizer and
policy state (switch phase, IOMT surrogate data), data order and records, so each step is recorded once.
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
from torch import nn

from hyperswitch.optim._dist import world_size as dist_world_size
from hyperswitch.switching import Policy
from hyperswitch.switching._base import tensor_bytes
from hyperswitch.train.spec import TRAIN_DEFAULTS as TRAIN_DEFAULTS  # re-exported: their home is train.spec
from hyperswitch.train.spec import TrainSpec
from hyperswitch.train.spec import validate_train as validate_train
from hyperswitch.workloads import build_workload

CHECKPOINT_FORMAT = 1


@dataclass
class RunResult:
    status: str  # completed | diverged
    steps: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0  # times this run was resumed from a checkpoint
    switch: dict[str, Any] | None = None  # the policy's switch report at the end (Stepper.switch_report), if any


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def wrap_data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``model`` when a process group with more than one worker is up (gradients averaged)."""
    if dist_world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def train_run(
    workload_spec: Mapping[str, Any],
    policy: Policy,
    train_spec: TrainSpec | Mapping[str, Any],
    seed: int,
    *,
    device: str | torch.device = "cpu",
    on_eval: Callable[[dict[str, Any], RunResult, dict[str, Any] | None], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> RunResult:
    """Train ``policy`` on the workload for ``train_spec`` steps/epochs with ``seed`` (a mapping is validated
    into a :class:`TrainSpec` first)."""
    train = TrainSpec.coerce(train_spec)
    device = torch.device(device)
    wl = build_workload(workload_spec, seed, rank=rank, world_size=world_size).to(device)
    model = wrap_data_parallel(wl.model, device)
    stepper = policy.build(model, wl.loss_fn)
    batches = wl.train
    steps_per_epoch = len(batches)
    total = train.total_steps(steps_per_epoch)
    target = train.target_accuracy
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    param_bytes = tensor_bytes(list(wl.model.parameters())) * 2  # parameters + gradients

    result = RunResult(status="completed")
    step, epoch, skip = 0, 0, 0
    best_acc, time_to_target, steps_to_target = -math.inf, None, None
    peak_bytes = 0
    last_eval: dict[str, float] = {}
    losses: list[float] = []
    elapsed0 = 0.0
    if resume is not None:
        if resume.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {resume.get('format')!r} is not {CHECKPOINT_FORMAT}")
        wl.model.load_state_dict(resume["model"])
        stepper.load_state_dict(resume["stepper"])
        batches.generator.set_state(resume["epoch_generator"])
        torch.set_rng_state(resume["torch_rng"])
        result.steps, result.events = list(resume["rows"]), list(resume["events"])
        result.restarts = int(resume.get("restarts", 0)) + 1
        step, epoch, skip = int(resume["step"]), int(resume["epoch"]) - 1, int(resume["batch_in_epoch"])
        best_acc = float(resume["best_acc"])
        time_to_target, peak_bytes = resume["time_to_target"], int(resume["peak_bytes"])
        steps_to_target = resume.get("steps_to_target")  # (checkpoints from before it was recorded lack it)
        last_eval, losses, elapsed0 = dict(resume["last_eval"]), list(resume["epoch_losses"]), resume["elapsed"]
    t0 = time.perf_counter() - elapsed0
    stop = step >= total
    while not stop:
        epoch += 1
        epoch_generator = batches.generator.get_state()
        if not skip:
            losses = []
        for b, (xb, yb) in enumerate(batches):
            if b < skip:  # resuming mid-epoch: the same permutation, batches already trained are passed over
                continue
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
            diverged = not math.isfinite(report.loss) or abs(report.loss) > train.divergence_loss
            if diverged or step % train.eval_every == 0 or step >= total:
                last_eval = wl.evaluate()
                row.update(last_eval)
                acc = last_eval.get("val_accuracy")
                if acc is not None:
                    best_acc = max(best_acc, acc)
                    if target is not None and time_to_target is None and acc >= target:
                        time_to_target, steps_to_target = row["elapsed_s"], step
                vloss = last_eval.get("val_loss")
                if (train.target_loss is not None and time_to_target is None and vloss is not None
                        and vloss <= train.target_loss):
                    time_to_target, steps_to_target = row["elapsed_s"], step
            result.steps.append(row)
            if diverged:
                result.status = "diverged"
                result.events.append({"step": step, "kind": "diverged",
                                      "detail": json.dumps({"loss": str(report.loss)})})
            stop = diverged or step >= total
            if row["val_loss"] is not None and on_eval is not None and not stop:  # the final report is the caller's
                result.summary = _summary(result, last_eval, best_acc, (time_to_target, steps_to_target), peak_bytes,
                                          t0, step, epoch, batches.batch_size, cuda, device)
                state = None
                if train.checkpoint_due(step):
                    state = {
                        "format": CHECKPOINT_FORMAT, "step": step, "epoch": epoch, "batch_in_epoch": b + 1,
                        "epoch_generator": epoch_generator, "torch_rng": torch.get_rng_state(),
                        "model": wl.model.state_dict(), "stepper": stepper.state_dict(),
                        "rows": list(result.steps), "events": list(result.events), "best_acc": best_acc,
                        "time_to_target": time_to_target, "steps_to_target": steps_to_target,
                        "peak_bytes": peak_bytes, "last_eval": dict(last_eval),
                        "epoch_losses": list(losses), "elapsed": time.perf_counter() - t0,
                        "restarts": result.restarts,
                    }
                on_eval(row, result, state)
            if stop:
                break
        skip = 0
        if not stop:
            for ev in stepper.end_epoch(epoch, sum(losses) / max(len(losses), 1)):
                result.events.append({"step": ev.step, "kind": ev.kind, "detail": ev.detail_json()})
    result.summary = _summary(result, last_eval, best_acc, (time_to_target, steps_to_target), peak_bytes, t0, step,
                              epoch, batches.batch_size, cuda, device)
    result.switch = stepper.switch_report()
    return result


def _summary(result: RunResult, last_eval: Mapping[str, float], best_acc: float,
             to_target: tuple[float | None, int | None], peak_bytes: int, t0: float, step: int, epoch: int,
             batch_size: int, cuda: bool,
             device: torch.device) -> dict[str, Any]:
    """Per-trial metrics. Memory: on a GPU CUDA's max allocated bytes; on the CPU the bytes of parameters,
    gradients and optimizer state (``memory_source`` says which), plus the process's peak RSS apart.
    ``to_target``: the elapsed seconds and the step of the first evaluation that reached the target (None: not
    reached, or no target)."""
    wall = time.perf_counter() - t0
    last_loss = result.steps[-1]["loss"] if result.steps else math.nan
    switch_step = next((e["step"] for e in result.events if e["kind"] == "switch"), None)
    return {
        "train_loss": last_loss,
        "val_loss": last_eval.get("val_loss"),
        "val_accuracy": last_eval.get("val_accuracy"),
        "best_val_accuracy": best_acc if math.isfinite(best_acc) else None,
        "val_recon_error": last_eval.get("val_recon_error"),
        "steps_done": step,
        "epochs_done": epoch,
        "switch_step": switch_step,
        "time_to_target_s": to_target[0],
        "steps_to_target": to_target[1],
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated(device) if cuda else peak_bytes),
        "memory_source": "cuda_max_allocated" if cuda else "cpu_tensor_bytes",
        "peak_rss_bytes": _peak_rss_bytes(),
        "wall_time_s": wall,
        "samples_per_s": step * batch_size / wall if wall > 0 else None,
        "workers": dist_world_size(),
        "restarts": result.restarts,
    }
