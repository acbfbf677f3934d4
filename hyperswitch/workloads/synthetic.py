"""Two-dimensional test functions as 2-parameter "models" (001 Figures 6 and 7; 002's synthetic settings).

The model's only parameter is the point ``p = (p1, p2)`` (float64), started at ``start`` (default: the
function's usual start below); the loss is the function value ``f(p)``. There is no data: each training step
gets a dummy batch (one zero row per worker), so the workload runs through the same training loop, policies
and sweeps as the others; an "epoch" is ``steps_per_epoch`` steps. Every optimizer sees the exact gradient
(no noise), as in 001's synthetic comparison.

Validation: ``val_loss`` is ``f(p)`` at the current point. There is no accuracy: the workload's task is
``regression``, so ``val_accuracy`` (and ``best_val_accuracy``) is null in the results and
``train.target_accuracy`` never triggers; use ``metric: val_loss, mode: min`` in a search space.
``distance_to_optimum(function, point)`` gives the distance to the nearest global minimum for reports.

| function   | f(p1, p2)                                                              | minimum (f = 0)   | start     |
|------------|------------------------------------------------------------------------|-------------------|-----------|
| rosenbrock | 100 (p2 − p1²)² + (1 − p1)²                                            | (1, 1)            | (−1.2, 1) |
| beale      | (1.5 − p1 + p1 p2)² + (2.25 − p1 + p1 p2²)² + (2.625 − p1 + p1 p2³)²   | (3, 0.5)          | (1, 1.5)  |
| himmelblau | (p1² + p2 − 11)² + (p1 + p2² − 7)²                                     | four, e.g. (3, 2) | (0, 0)    |
| griewank   | 1 + (p1² + p2²)/4000 − cos(p1) cos(p2/√2)                              | (0, 0)            | (3, 4)    |
| ackley     | −20 exp(−0.2 √((p1² + p2²)/2)) − exp((cos 2πp1 + cos 2πp2)/2) + e + 20 | (0, 0)            | (2, 2)    |

Rosenbrock's and Beale's formulas are 001's (Appendix B.1); 001 does not state its start points, so the
starts are this project's choice (Rosenbrock's is the classic (−1.2, 1)). Ackley's norm uses
``torch.linalg.vector_norm``, whose gradient at the origin is 0 rather than NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from hyperswitch.config.validate import choice, is_number, number
from hyperswitch.errors import ConfigError
from hyperswitch.workloads._base import Batches, Workload, register_workload


def rosenbrock(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return 100.0 * (y - x ** 2) ** 2 + (1.0 - x) ** 2


def beale(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


def himmelblau(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return (x ** 2 + y - 11.0) ** 2 + (x + y ** 2 - 7.0) ** 2


def griewank(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return 1.0 + (x ** 2 + y ** 2) / 4000.0 - torch.cos(x) * torch.cos(y / math.sqrt(2.0))


def ackley(p: torch.Tensor) -> torch.Tensor:
    r = torch.linalg.vector_norm(p) / math.sqrt(2.0)  # sqrt((x² + y²) / 2)
    c = (torch.cos(2 * math.pi * p[0]) + torch.cos(2 * math.pi * p[1])) / 2.0
    return -20.0 * torch.exp(-0.2 * r) - torch.exp(c) + math.e + 20.0


FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "rosenbrock": rosenbrock, "beale": beale, "himmelblau": himmelblau, "griewank": griewank, "ackley": ackley,
}
STARTS: dict[str, tuple[float, float]] = {
    "rosenbrock": (-1.2, 1.0), "beale": (1.0, 1.5), "himmelblau": (0.0, 0.0), "griewank": (3.0, 4.0),
    "ackley": (2.0, 2.0),
}
OPTIMA: dict[str, tuple[tuple[float, float], ...]] = {
    "rosenbrock": ((1.0, 1.0),),
    "beale": ((3.0, 0.5),),
    "himmelblau": ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
    "griewank": ((0.0, 0.0),),
    "ackley": ((0.0, 0.0),),
}


def distance_to_optimum(function: str, point: Sequence[float]) -> float:
    """Euclidean distance from ``point`` to the nearest global minimum of ``function``."""
    return min(math.dist(tuple(float(v) for v in point), opt) for opt in OPTIMA[function])


class Point(nn.Module):
    """A 2-parameter "model": ``forward(x)`` is ``f(point)`` repeated once per row of ``x``."""

    def __init__(self, function: str, start: Sequence[float]) -> None:
        super().__init__()
        self.function = function
        self.point = nn.Parameter(torch.tensor([float(start[0]), float(start[1])], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FUNCTIONS[self.function](self.point).expand(x.shape[0])


def value_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss is the function value itself (the target is a dummy)."""
    return out.mean()


def _check(spec: dict[str, Any], key: str) -> None:
    choice(spec["function"], tuple(FUNCTIONS), f"{key}.function")
    start = spec["start"]
    if start is not None and (not isinstance(start, list | tuple) or len(start) != 2
                              or not all(is_number(v) and math.isfinite(v) for v in start)):
        raise ConfigError(f"{key}.start", "must be null (the function's usual start) or a list of 2 finite numbers",
                          start)
    number(spec["steps_per_epoch"], f"{key}.steps_per_epoch", integer=True, low=1)


@register_workload(
    "synthetic_2d",
    defaults={"function": "rosenbrock", "start": None, "steps_per_epoch": 100},
    check=_check,
    task="regression",
)
def synthetic_2d(seed: int, *, rank: int = 0, world_size: int = 1, function: str, start: Sequence[float] | None,
                 steps_per_epoch: int) -> Workload:
    """2-D test function (rosenbrock, beale, himmelblau, griewank, ackley) whose 2 parameters are the point."""
    model = Point(function, STARTS[function] if start is None else start)  # no randomness: the seed is unused
    n = int(steps_per_epoch) * world_size  # one dummy row per worker and step
    dummy_x, dummy_y = torch.zeros(n, 1), torch.zeros(n)
    return Workload(
        name="synthetic_2d",
        model=model,
        loss_fn=value_loss,
        train=Batches(dummy_x, dummy_y, world_size, seed, rank=rank, world_size=world_size),
        val_x=torch.zeros(1, 1),
        val_y=torch.zeros(1),
        task="regression",
    )
