"""Workloads by name: models and data that need no download. Importing registers them."""

from hyperswitch.workloads import (  # noqa: F401  (importing a module registers its workloads)
    char_lm,
    digits,
    digits_cnn,
    least_squares,
    synthetic,
    tabular,
    transfer,
)
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
