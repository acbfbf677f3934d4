"""Results: the Parquet schema, the crash-safe writer and the reader, study names and the study lock."""

from hyperswitch.results.lock import StudyLock, StudyLocked
from hyperswitch.results.names import check_study_name, find_study
from hyperswitch.results.reader import Study, StudyNotFound, list_studies, open_study
from hyperswitch.results.schema import EVENTS_SCHEMA, METRICS, STEPS_SCHEMA
from hyperswitch.results.store import StudyFileError, StudyStore

__all__ = ["EVENTS_SCHEMA", "METRICS", "STEPS_SCHEMA", "Study", "StudyFileError", "StudyLock", "StudyLocked",
           "StudyNotFound", "StudyStore", "check_study_name", "find_study", "list_studies", "open_study"]
