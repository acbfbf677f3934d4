"""The dashboard's pages, in navigation order. One module per page: ``PAGE`` (path, name, id prefix, layout,
register)."""

from __future__ import annotations

from dashboards.pages import ablations, curves, lr_rules, memory, parameters, studies, switching

PAGES = [studies.PAGE, parameters.PAGE, curves.PAGE, switching.PAGE, memory.PAGE, ablations.PAGE, lr_rules.PAGE]
