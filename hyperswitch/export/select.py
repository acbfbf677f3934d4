"""Choosing the configurations to export: the rules live in :mod:`hyperswitch.results.select` (the sweep's summary
applies them too, and search must not depend on export); this module keeps the export-side names importable."""

from hyperswitch.results.select import (
    SELECTIONS,
    TIME_METRIC,
    Choice,
    Selection,
    check_metric,
    select_configurations,
)

__all__ = ["SELECTIONS", "TIME_METRIC", "Choice", "Selection", "check_metric", "select_configurations"]
