"""Figures: pure data -> small named tuple -> plotly figure functions, shared by the dashboard and the report.

Studies are read through :mod:`hyperswitch.results.cache` (cached, column-selective reads per study file
version; ``StudyReadError``); import them from there.

- ``data``: ``NotApplicable``, policy labels, background prefetching for the dashboard, small helpers.
- ``parameter``: metric vs one parameter (mean, spread band), heatmap of two, parallel coordinates, importance.
- ``curves``: learning curves with bands and switch markers.
- ``switching``: switch points, their table per group, IOMT timeline.
- ``memory``: a metric per group with error bars, memory per phase, Pareto front.
- ``history``: a study's metric per configuration in config order with its best-so-far line (the Trials page).
- ``compare``: two or more studies on one metric (configuration means, best-so-far curves, a table).
- ``comparisons``: arms of one study vs a reference arm, paired by seed (table, forest plot); the statistics
  (paired differences, Wilson rates, Newcombe's rate difference, the bimodal rule) are in ``_stats``.
- ``ablations``, ``lr_rules``, ``studies``; ``report`` writes them all as standalone HTML
  (``--png``: chosen ones as small PNG files).
"""

from hyperswitch.figures.data import NotApplicable

__all__ = ["NotApplicable"]
