"""Results: the Parquet schema, the crash-safe writer and the reader."""

from hyperswitch.results.reader import Study, StudyNotFound, list_studies, open_study
from hyperswitch.results.schema import EVENTS_SCHEMA, METRICS, STEPS_SCHEMA
from hyperswitch.results.store import StudyStore

__all__ = ["EVENTS_SCHEMA", "METRICS", "STEPS_SCHEMA", "Study", "StudyNotFound", "StudyStore", "list_studies",
           "open_study"]
