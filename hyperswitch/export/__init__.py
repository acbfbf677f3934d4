"""Export: from a study to policy files with provenance (``hyperswitch export``).

``export_study(study, storage="runs", metric=None, mode=None, select="mean", top=1, output=None, force=False,
max_time_ratio=None) -> list[ExportResult]``; the selection rules are in :mod:`hyperswitch.results.select` (also
importable as :mod:`hyperswitch.export.select`); the space's distributions come from study.json
(``hyperswitch.results.study_distributions``).
"""

from hyperswitch.export.select import Choice, Selection, check_metric, select_configurations
from hyperswitch.export.writer import ExportResult, export_study, resolve_study

__all__ = ["Choice", "ExportResult", "Selection", "check_metric", "export_study", "resolve_study",
           "select_configurations"]
