"""The dashboard's pages, in navigation order. One module per page: ``PAGE`` (path, name, id prefix, layout,
register)."""

from __future__ import annotations

from dashboards.pages import (
    ablations,
    compare,
    comparisons,
    curves,
    lr_rules,
    memory,
    parameters,
    studies,
    switching,
    trials,
)

PAGES = [studies.PAGE, parameters.PAGE, trials.PAGE, curves.PAGE, switching.PAGE, memory.PAGE, ablations.PAGE,
         comparisons.PAGE, lr_rules.PAGE, compare.PAGE]
