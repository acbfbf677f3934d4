"""Your own model and data as a hyperswitch workload: name it by import path, ``examples.user_workload:two_moons``.

Train a policy on it (run from the project folder, so that ``examples`` is importable)::

    hyperswitch train policies/adamw.yaml --workload examples.user_workload:two_moons --steps 200

or use it in a search space, options included (``batch_size``, ``dataset_fraction`` and ``split_seed`` are
added by hyperswitch; ``n``, ``noise`` and ``hidden`` are this factory's own keyword parameters)::

    workload: {name: "examples.user_workload:two_moons", hidden: $hidden, batch_size: 32}

The contract (``hyperswitch/workloads/user.py``): ``factory(seed, **options)`` returns the model, the loss and
the training and validation data, as ``(x, y)`` tensors or as any iterable of ``(x, y)`` batches such as a
``DataLoader`` (read once into memory; hyperswitch batches and shuffles it with its own seeded ``Batches``).
The torch RNG is seeded with ``seed`` before the call; fix the train/validation split with ``split_seed``
(not ``seed``), so that every trial of a study sees the same split.
"""

from __future__ import annotations

import torch
from sklearn.datasets import make_moons
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hyperswitch.errors import ConfigError


def two_moons(seed: int, *, n: int = 600, noise: float = 0.2, hidden: int = 32, split_seed: int = 0) -> dict:
    """Two interleaving half-moons (scikit-learn's generator, nothing downloaded) and a small MLP."""
    if not isinstance(n, int) or n < 20:
        raise ConfigError("workload.n", "must be an integer >= 20", n)
    if not isinstance(hidden, int) or hidden < 1:
        raise ConfigError("workload.hidden", "must be an integer >= 1", hidden)
    x, y = make_moons(n_samples=n, noise=noise, random_state=split_seed)  # the data and split: split_seed only
    x = torch.tensor(x, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    n_val = n // 5
    train = DataLoader(TensorDataset(x[n_val:], y[n_val:]), batch_size=100, shuffle=False)  # a loader works...
    val = (x[:n_val], y[:n_val])  # ...and so do plain tensors
    model = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                          nn.Linear(hidden, 2))  # initialised from the trial seed (hyperswitch seeds torch)
    return {"model": model, "loss_fn": nn.functional.cross_entropy, "train": train, "val": val,
            "task": "classification"}
