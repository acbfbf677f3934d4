"""Transfer learning on scikit-learn's digits: pre-trained on digits 0-4, tuned on digits 5-9 (IOMT's fine-tuning
setting, 002 Table 2 and §4.2's transferability).

Data: ``digits.digits_split`` (standardised pixels, validation rows fixed by ``split_seed``). The source task is
the training rows of digits 0-4; the target task is the rows of digits 5-9, relabelled 0-4 (training rows to
tune on, validation rows to evaluate). ``dataset_fraction`` keeps a seeded subset of the target training rows.

Pre-training: an MLP backbone ``64 - hidden - ReLU - hidden - ReLU`` and a source head ``Linear(hidden, 5)``,
trained with Adam (lr 1e-3, batch 64) for ``pretrain_epochs`` epochs on the source rows. It depends only on
``(hidden, val_fraction, split_seed, pretrain_epochs)``, never on the trial seed: it is seeded by ``split_seed``
in a forked RNG (the caller's random state is untouched), on one thread (the same bits in every process),
and cached in-process, so every trial of a study tunes the same pre-trained backbone (the first build in a
process pays ~0.3 s).

The model tuned: the pre-trained backbone and a new head ``Linear(hidden, 5)`` initialised by the trial seed.
``mode: head`` freezes the backbone (``requires_grad = False``: optimizers, K-FAC and DDP only see the head);
``mode: full`` tunes every weight. The head is the model's last ``nn.Linear``, the layer IOMT compresses with
``layers: last``.

Transferability (IOMT's ``omega_t`` inputs, ``transferability(spec)``), measured before any tuning:
``logme`` = LogME of the backbone's features of the target training rows; ``leep`` = LEEP of the source
model's predicted distribution over its 5 source classes on those rows; ``omega_p`` = the pre-trained model's
accuracy on the target validation rows without training any weight: each row gets the target class ``y``
maximising ``sum_z P(y | z) p(z | x)``, with ``P(y | z)`` LEEP's empirical conditional from the training rows
(the only way a source classifier over other labels can be "tested directly" on the target task).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperswitch.config.validate import choice, number
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of, make_batches
from hyperswitch.workloads.digits import digits_split

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


def backbone(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())


class TransferNet(nn.Module):
    """Backbone (pre-trained) and head; ``features(x)`` is the backbone's output."""

    def __init__(self, hidden: int, n_classes: int = 5) -> None:
        super().__init__()
        self.backbone = backbone(hidden)
        self.head = nn.Linear(hidden, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def task_rows(val_fraction: float, split_seed: int, classes: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val) of the digits in ``classes``, labels renumbered 0..len-1."""
    xtr, ytr, xval, yval = digits_split(float(val_fraction), int(split_seed))
    out: list[torch.Tensor] = []
    for x, y in ((xtr, ytr), (xval, yval)):
        keep = np.isin(y, classes)
        out += [torch.from_numpy(x[keep]), torch.from_numpy(y[keep] - classes[0])]
    return tuple(out)


@lru_cache(maxsize=8)
def pretrained(hidden: int, val_fraction: float, split_seed: int, pretrain_epochs: int) -> tuple[dict, float]:
    """(state_dict of the source model, its validation accuracy on digits 0-4); seeded by split_seed, cached."""
    xtr, ytr, xval, yval = task_rows(val_fraction, split_seed, SOURCE_CLASSES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same bits in every process, whatever its thread count
    try:
        model = _pretrain(xtr, ytr, hidden, split_seed, pretrain_epochs)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        acc = float((model(xval).argmax(dim=1) == yval).double().mean())
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, acc


def _pretrain(xtr: torch.Tensor, ytr: torch.Tensor, hidden: int, split_seed: int, pretrain_epochs: int) -> TransferNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(10_000 + split_seed)
        model = TransferNet(hidden)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(split_seed)
        for _ in range(pretrain_epochs):
            perm = torch.randperm(len(ytr), generator=gen)
            for i in range(0, len(perm), 64):
                idx = perm[i:i + 64]
                opt.zero_grad()
                nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
                opt.step()
    return model


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    choice(spec["mode"], ("head", "full"), f"{key}.mode")
    number(spec["hidden"], f"{key}.hidden", integer=True, low=1)
    number(spec["pretrain_epochs"], f"{key}.pretrain_epochs", integer=True, low=0)


@register_workload(
    "transfer",
    defaults={"mode": "head", "batch_size": 32, "hidden": 64, "pretrain_epochs": 30, "val_fraction": 0.2,
              "dataset_fraction": 1.0, "split_seed": 0},
    check=_check,
)
def transfer(seed: int, *, rank: int = 0, world_size: int = 1, mode: str, batch_size: int, hidden: int,
             pretrain_epochs: int, val_fraction: float, dataset_fraction: float, split_seed: int) -> Workload:
    """MLP pre-trained on digits 0-4, tuned on digits 5-9; mode head (backbone frozen) or full."""
    state, _ = pretrained(int(hidden), float(val_fraction), int(split_seed), int(pretrain_epochs))
    xtr, ytr, xval, yval = task_rows(val_fraction, split_seed, TARGET_CLASSES)
    keep = torch.from_numpy(fraction_of(len(ytr), float(dataset_fraction), int(split_seed)))
    torch.manual_seed(seed)
    model = TransferNet(int(hidden))  # the head keeps this seeded initialisation; the backbone is replaced
    model.backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    if mode == "head":
        model.backbone.requires_grad_(False)
    return Workload(
        name="transfer",
        model=model,
        loss_fn=nn.functional.cross_entropy,
        train=make_batches(xtr[keep], ytr[keep], batch_size, seed, rank=rank, world_size=world_size),
        val_x=xval,
        val_y=yval,
    )


def transferability(spec: Mapping[str, Any] | None = None) -> dict[str, float]:
    """``omega_p``, ``logme`` and ``leep`` of the pre-trained model for the target task (see the module doc),
    plus ``source_accuracy`` (the pre-trained model on digits 0-4). ``spec``: the workload's options."""
    from hyperswitch.workloads import validate_workload
    from hyperswitch.workloads._transferability import leep, logme

    full = validate_workload({"name": "transfer", **{k: v for k, v in (spec or {}).items() if k != "name"}})
    state, source_acc = pretrained(int(full["hidden"]), float(full["val_fraction"]), int(full["split_seed"]),
                                   int(full["pretrain_epochs"]))
    xtr, ytr, xval, yval = task_rows(full["val_fraction"], full["split_seed"], TARGET_CLASSES)
    keep = torch.from_numpy(fraction_of(len(ytr), float(full["dataset_fraction"]), int(full["split_seed"])))
    xtr, ytr = xtr[keep], ytr[keep]
    source = TransferNet(int(full["hidden"]))
    source.load_state_dict(state)
    with torch.no_grad():
        feats = source.features(xtr).double().numpy()
        p_train = torch.softmax(source(xtr).double(), dim=1).numpy()
        p_val = torch.softmax(source(xval).double(), dim=1).numpy()
    y = ytr.numpy()
    joint = np.zeros((len(TARGET_CLASSES), len(SOURCE_CLASSES)))
    np.add.at(joint, y, p_train)
    cond = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-300)  # P(y | z)
    pred = (p_val @ cond.T).argmax(axis=1)
    return {"omega_p": float(np.mean(pred == yval.numpy())), "logme": logme(feats, y), "leep": leep(p_train, y),
            "source_accuracy": source_acc}
