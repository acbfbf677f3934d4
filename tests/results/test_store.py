"""The crash-safe writer: parts, compaction, and the reader's union (real pyarrow files)."""

from __future__ import annotations

import pyarrow.parquet as pq

from hyperswitch.results import STEPS_SCHEMA, StudyStore, open_study


def make_store(tmp_path):
    store = StudyStore(tmp_path / "study")
    store.root.mkdir()
    store.write_meta({"name": "study", "metric": "val_accuracy", "mode": "max"})
    return store


def row(tid, status="completed", acc=0.9, **extra):
    return {"trial_id": tid, "config_id": tid.split("-")[0], "seed": int(tid[-1]), "status": status,
            "workload": "digits_mlp", "policy_type": "single", "lr": 0.1, "val_accuracy": acc, **extra}


def steps(n):
    return [{"step": i + 1, "epoch": 1, "loss": 1.0 / (i + 1), "lr": 0.1, "optimizer": "sgd", "elapsed_s": 0.01 * i,
             "memory_bytes": 100} for i in range(n)]


def test_parts_then_compaction_keep_every_row(tmp_path):
    store = make_store(tmp_path)
    store.write_trial_parts(row("c0000-s0"), steps(5), [{"step": 3, "kind": "switch", "detail": "{}"}])
    store.write_trial_parts(row("c0000-s1", acc=0.8), steps(4), [])
    study = open_study(store.root)  # read before compaction: from parts
    assert sorted(study.trials.trial_id) == ["c0000-s0", "c0000-s1"]
    assert len(study.steps) == 9 and len(study.events) == 1
    assert store.compact() == 2
    assert not list(store.parts.glob("*.parquet"))
    study = open_study(store.root)
    assert sorted(study.trials.trial_id) == ["c0000-s0", "c0000-s1"]
    assert len(study.steps) == 9
    assert pq.read_schema(store.table_path("steps")).names == STEPS_SCHEMA.names
    assert study.best_trial()["trial_id"] == "c0000-s0"


def test_running_trials_are_not_finished_and_can_be_discarded(tmp_path):
    store = make_store(tmp_path)
    store.write_trial_parts(row("c0000-s0"), steps(3), [])
    store.write_trial_parts(row("c0001-s0", status="running"), steps(2), [])
    assert list(open_study(store.root).trials.trial_id) == ["c0000-s0"]
    assert sorted(open_study(store.root, include_running=True).trials.trial_id) == ["c0000-s0", "c0001-s0"]
    assert store.compact() == 1  # the running one stays a part
    assert store.discard_unfinished_parts() == ["c0001-s0"]
    assert not list(store.parts.glob("*.parquet"))
    assert list(open_study(store.root).trials.trial_id) == ["c0000-s0"]


def test_crash_between_compaction_and_part_removal_does_not_duplicate(tmp_path):
    store = make_store(tmp_path)
    store.write_trial_parts(row("c0000-s0"), steps(3), [])
    store.compact()
    # A crash after the tables were rewritten but before the parts were deleted leaves both: parts win.
    store.write_trial_parts(row("c0000-s0", acc=0.7), steps(3), [])
    study = open_study(store.root)
    assert len(study.trials) == 1 and study.trials.val_accuracy[0] == 0.7
    assert len(study.steps) == 3
    store.compact()
    study = open_study(store.root)
    assert len(study.trials) == 1 and len(study.steps) == 3


def test_parameter_columns_of_different_types_merge(tmp_path):
    store = make_store(tmp_path)
    store.write_trial_parts(row("c0000-s0", switch_at=None), steps(1), [])
    store.write_trial_parts(row("c0001-s0", switch_at=50), steps(1), [])
    store.compact()
    t = open_study(store.root).trials.set_index("trial_id")
    assert t.loc["c0001-s0", "switch_at"] == 50


def test_find_trial_after_compaction_folded_it_in(tmp_path):
    # The driver settles a trial after the trial wrote its final part; another trial's compaction may have
    # folded that part into trials.parquet in between. The row must still be found, not taken for lost.
    store = make_store(tmp_path)
    store.write_trial_parts(row("c0000-s0"), steps(2), [])
    store.write_trial_parts(row("c0000-s1", acc=0.5), steps(2), [])
    store.compact()
    assert store.read_trial_part("c0000-s1") is None
    found = store.find_trial("c0000-s1")
    assert found["status"] == "completed" and found["val_accuracy"] == 0.5
    assert store.find_trial("c0009-s0") is None


def test_reading_while_trials_rewrite_parts_and_driver_compacts(tmp_path):
    """Readers (dashboard, `studies`, tests polling) run while a trial replaces its running part at every
    evaluation and the driver compacts: every read succeeds and never loses a finished trial."""
    import threading

    store = make_store(tmp_path)
    store.write_trial_parts(row("c0000-s0"), steps(50), [])
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            store.write_trial_parts(row("c0001-s0", status="running"), steps(1 + i % 300), [])
            if i % 7 == 0:
                store.write_trial_parts(row(f"c1{i:03d}-s0"), steps(3), [])
                store.compact()

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(150):
            try:
                study = open_study(store.root, include_running=True)
                assert "c0000-s0" in set(study.trials.trial_id)
                assert study.trials.trial_id.is_unique
            except BaseException as exc:
                errors.append(exc)
                break
    finally:
        stop.set()
        t.join()
    assert not errors, errors[0]
