"""Workloads by name: models and data that need no download. Importing registers them."""

from hyperswitch.workloads import digits  # noqa: F401  (registers digits_mlp)
from hyperswitch.workloads._base import (
    Batches,
    Workload,
    build_workload,
    check_workload_keys,
    get_workload,
    register_workload,
    validate_workload,
    workload_names,
)

__all__ = [
    "Batches",
    "Workload",
    "build_workload",
    "check_workload_keys",
    "get_workload",
    "register_workload",
    "validate_workload",
    "workload_names",
]
