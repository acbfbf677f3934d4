"""hyperswitch.results.cache (what the dashboard and the report read through): column-selective, cached reads of a
study written by the real results store: partial studies, parts winning over the compacted table, new parts seen
at the next read, and clear errors for missing or corrupt files."""

from __future__ import annotations

import pytest

from hyperswitch.results import cache as rc
from hyperswitch.results.store import StudyStore


def _write(store: StudyStore, tid: str, status: str, n_steps: int, loss0: float = 1.0) -> None:
    steps = [{"step": s, "epoch": 1, "loss": loss0 / s, "optimizer": "sgdm", "memory_bytes": 100 * s}
             for s in range(1, n_steps + 1)]
    row = {"trial_id": tid, "config_id": tid[:2], "seed": 0, "status": status, "workload": "digits_mlp",
           "policy_type": "switch", "optimizers": "adam,sgdm", "lr": 0.1, "val_accuracy": 0.5}
    store.write_trial_parts(row, steps, [{"step": 2, "kind": "switch", "detail": "{}"}])


@pytest.fixture()
def study(tmp_path):
    store = StudyStore(tmp_path / "s")
    store.root.mkdir()
    store.write_meta({"name": "s", "metric": "val_accuracy", "mode": "max", "parameter_names": ["lr"],
                      "status": "running", "n_trials_total": 3})
    _write(store, "c0-s0", "completed", 3)
    _write(store, "c1-s0", "completed", 3)
    store.compact()
    _write(store, "c2-s0", "running", 2)  # a part of a trial still running
    rc.clear_cache()
    return store


def test_partial_study_reads_compacted_rows_and_running_parts(study):
    info = rc.study_info(study.root)
    assert info.trials.trial_id.tolist() == ["c0-s0", "c1-s0", "c2-s0"] and info.finished().shape[0] == 2
    steps = rc.study_table(study.root, "steps", ["step", "loss"])
    assert list(steps.columns) == ["trial_id", "step", "loss"]  # only what was asked
    assert steps.groupby("trial_id", observed=True).size().to_dict() == {"c0-s0": 3, "c1-s0": 3, "c2-s0": 2}
    ev = rc.study_table(study.root, "events", ["kind"])
    assert ev["kind"].astype(str).tolist() == ["switch"] * 3


def test_new_parts_are_seen_and_parts_win_over_the_table(study):
    assert len(rc.study_table(study.root, "steps", ["step"])) == 8
    _write(study, "c2-s0", "completed", 4)  # the running trial finishes: its part grows
    _write(study, "c0-s0", "completed", 5, loss0=9.0)  # re-run of a compacted trial: the part wins
    steps = rc.study_table(study.root, "steps", ["step", "loss"])
    sizes = steps.groupby("trial_id", observed=True).size().to_dict()
    assert sizes == {"c0-s0": 5, "c1-s0": 3, "c2-s0": 4}
    assert steps[steps.trial_id == "c0-s0"].loss.iloc[0] == 9.0
    assert rc.study_info(study.root).finished().shape[0] == 3


def test_columns_read_separately_line_up(study):
    a = rc.study_table(study.root, "steps", ["step"])
    b = rc.study_table(study.root, "steps", ["step", "memory_bytes"])  # step cached, memory_bytes read now
    assert (b.memory_bytes == 100 * b.step).all() and a.step.tolist() == b.step.tolist()


def test_corrupt_and_missing_files_name_the_file(study):
    (study.root / "parts" / "c2-s0.steps.parquet").unlink()
    study.compact()  # only finished parts are folded; remove the running one's trial part too
    for p in (study.root / "parts").glob("*"):
        p.unlink()
    rc.clear_cache()
    (study.root / "steps.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(rc.StudyReadError, match=r"steps\.parquet: not a readable Parquet file"):
        rc.study_table(study.root, "steps", ["loss"])
    (study.root / "steps.parquet").unlink()
    with pytest.raises(rc.StudyReadError, match=r"steps\.parquet: missing"):
        rc.study_table(study.root, "steps", ["loss"])
    (study.root / "study.json").unlink()
    with pytest.raises(rc.StudyReadError, match=r"study\.json: missing"):
        rc.study_info(study.root)


def test_the_cached_reader_reads_what_open_study_reads(study):
    """One reading code path: the figures' cached reads and ``open_study`` see the same rows."""
    from hyperswitch.results import open_study

    s = open_study(study.root, include_running=True)
    info = rc.study_info(study.root)
    assert info.trials.trial_id.tolist() == s.trials.trial_id.tolist()
    steps = rc.study_table(study.root, "steps", ["step", "loss"])
    assert steps.trial_id.astype(str).tolist() == s.steps.trial_id.tolist()
    assert steps.loss.tolist() == s.steps.loss.tolist()


def test_figures_do_not_reexport_the_results_reader():
    """One way to the study reader: hyperswitch.results.cache (figures re-exported it once)."""
    from hyperswitch import figures
    from hyperswitch.figures import data as fd

    for name in ("study_info", "study_table", "StudyReadError", "clear_cache", "cached", "study_version"):
        assert name not in figures.__all__ and name not in fd.__all__
