"""Results: the one place that reads and writes studies. The Parquet schema, the crash-safe writer and the reader
(``open_study``), the cached column-selective reads the dashboard and the report use (``study_info``,
``study_table``), the parameter distributions study.json records, the rules that choose a study's best
configurations, study names and the study lock. Imports nothing from search, train, export or figures."""

from hyperswitch.results.cache import StudyInfo, StudyReadError, clear_cache, study_info, study_table
from hyperswitch.results.distributions import study_distributions
from hyperswitch.results.lock import StudyLock, StudyLocked
from hyperswitch.results.names import check_study_name, find_study
from hyperswitch.results.reader import Study, StudyNotFound, list_studies, open_study
from hyperswitch.results.schema import EVENTS_SCHEMA, METRICS, STEPS_SCHEMA
from hyperswitch.results.select import Choice, Selection, same_value, select_configurations
from hyperswitch.results.store import StudyFileError, StudyStore

__all__ = ["EVENTS_SCHEMA", "METRICS", "STEPS_SCHEMA", "Choice", "Selection", "Study", "StudyFileError", "StudyInfo",
           "StudyLock", "StudyLocked", "StudyNotFound", "StudyReadError", "StudyStore", "check_study_name",
           "clear_cache", "find_study", "list_studies", "open_study", "same_value", "select_configurations",
           "study_distributions", "study_info", "study_table"]
