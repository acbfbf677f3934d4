"""Studies on an object store (``--storage s3://bucket/prefix``) against a real S3-protocol server (moto's standalone
server, its own process on 127.0.0.1) through pyarrow's real S3FileSystem: the storage URIs, the results store,
the caches' versions from object metadata, the study lock's object-store protocol, the commands and the dashboard
reading an S3 study. The sweep itself (Ray Tune and Train on S3, kill and resume) is tests/search/test_s3_sweep.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from hyperswitch.cli import main
from hyperswitch.results import StudyLock, StudyLocked, find_study, list_studies, open_study
from hyperswitch.results.cache import clear_cache, study_info, study_table
from hyperswitch.results.fs import ObjectPath, StorageError, open_storage
from hyperswitch.results.lock import ObjectStoreLock, release_dead_holder
from hyperswitch.results.store import StudyFileError, StudyStore
from tests.dashboards.test_cli_pages import write_study
from tests.results.studyfab import make_study


def objects(uri: str) -> dict[str, int]:
    """Every object under ``uri``: key -> size (folders, which S3 only implies, left out)."""
    fs, path = pafs.FileSystem.from_uri(uri)
    return {i.path[len(path) + 1:]: i.size for i in fs.get_file_info(pafs.FileSelector(path, recursive=True,
                                                                                        allow_not_found=True))
            if i.type == pafs.FileType.File}


# --- URIs ---------------------------------------------------------------------------------------------------

def test_local_folders_and_file_uris_stay_local_paths(tmp_path):
    assert open_storage("runs") == Path("runs")
    assert open_storage(tmp_path) == tmp_path
    assert open_storage(f"file://{tmp_path}") == tmp_path
    assert isinstance(open_storage(f"file://{tmp_path}"), Path)


def test_an_s3_uri_is_an_object_path_that_round_trips(s3):
    uri, _ = s3
    p = open_storage(f"{uri}/runs")
    assert isinstance(p, ObjectPath) and p.path == f"{uri[5:]}/runs"
    study = p / "tiny"
    assert study.name == "tiny" and study.parent == p and str(study) == f"{uri}/runs/tiny"
    assert open_storage(str(study)) == study  # a trial on another node reopens it from the string
    q = open_storage(f"{uri}/runs?region=us-east-1")
    assert str(q / "x") == f"{uri}/runs/x?region=us-east-1" and (q / "x").query == "region=us-east-1"
    with pytest.raises(ValueError):
        p / "../elsewhere"


@pytest.mark.parametrize(("uri", "rule"), [
    ("foo://bucket/runs", "cannot open this storage (Unrecognized filesystem type"),
    ("s3://", "names no bucket"),
    ("s3://bucket/runs?bogus=1", "Unexpected query parameter in S3 URI: 'bogus'"),
    ("s3://bucket/runs?secret_key=abc", "carries credentials (secret_key)"),
    ("file://relative/runs", "cannot open this storage"),
])
def test_bad_storage_uris_are_one_line_errors(s3, uri, rule, capsys):
    assert main(["studies", "--storage", uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hyperswitch: error: --storage: "), err
    assert rule in err and uri in err, err
    assert "a storage is a local folder or a URI that pyarrow.fs opens" in err
    with pytest.raises(StorageError):
        open_storage(uri)


def test_a_missing_bucket_is_one_line_before_anything_is_written(s3, space_file, capsys):
    uri, _ = s3
    path = space_file("name: nb\nworkload: {name: digits_mlp}\npolicy: {type: single, optimizer: {name: sgdm, lr: "
                      "0.1}}\ntrain: {steps: 5}\n")
    assert main(["sweep", str(path), "--storage", f"{uri}-missing/runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"bucket {uri[5:]}-missing does not exist" in err, err


# --- the results store ----------------------------------------------------------------------------------------

def _fill(store: StudyStore) -> None:
    store.write_meta({"name": store.name, "metric": "val_accuracy", "mode": "max", "status": "running"})
    for i in range(3):
        row = {"trial_id": f"c{i}-s0", "config_id": f"c{i}", "seed": 0, "status": "running", "lr": 0.1 * (i + 1),
               "val_accuracy": 0.1}
        steps = [{"step": s, "loss": 1.0 / s, "optimizer": "sgdm"} for s in range(1, 4)]
        store.write_trial_parts(row, steps, [])
        if i < 2:
            store.write_trial_parts({**row, "status": "completed", "val_accuracy": 0.5 + i}, steps,
                                    [{"step": 2, "kind": "switch", "detail": "{}"}])
        if i == 0:
            store.compact()


def test_store_on_s3_reads_and_compacts_as_a_local_folder_does(s3, tmp_path):
    uri, _ = s3
    remote, local = StudyStore(f"{uri}/runs/st"), StudyStore(tmp_path / "runs" / "st")
    local.root.mkdir(parents=True)
    for store in (remote, local):
        _fill(store)
    assert remote.part_trial_ids(finished_only=False) == local.part_trial_ids(finished_only=False) == ["c1-s0",
                                                                                                       "c2-s0"]
    for running in (False, True):
        r, ll = remote.read_tables(include_running=running), local.read_tables(include_running=running)
        for table in ("trials", "steps", "events"):
            assert r[table].equals(ll[table]), (table, running)
    assert set(objects(f"{uri}/runs/st")) == {"study.json", "trials.parquet", "steps.parquet", "events.parquet",
                                               *(f"parts/c{i}-s0.{t}.parquet" for i in (1, 2)
                                                 for t in ("trials", "steps", "events"))}
    assert remote.discard_unfinished_parts() == ["c2-s0"] and remote.compact() == 1
    local.discard_unfinished_parts()
    local.compact()
    assert set(objects(f"{uri}/runs/st")) == {"study.json", "trials.parquet", "steps.parquet", "events.parquet"}
    a, b = open_study(f"{uri}/runs/st"), open_study(local.root)
    assert a.trials.equals(b.trials) and a.steps.equals(b.steps) and a.events.equals(b.events)
    assert list(a.trials.val_accuracy) == [0.5, 1.5] and a.path == remote.root
    remote.update_meta(status="completed")  # study.json: a whole-object PUT
    assert json.loads(remote.meta_path.read_bytes())["status"] == "completed"
    assert [p.name for p in list_studies(f"{uri}/runs")] == ["st"]
    assert find_study("st", f"{uri}/runs") == remote.root == find_study(f"{uri}/runs/st")


def test_reads_racing_a_writer_see_whole_objects(s3, monkeypatch):
    """pyarrow reads an object as a HEAD and a ranged GET: an object replaced in between comes back cut or padded.
    Such reads are seen here (with one try per read), then never returned (with the retries)."""
    import pyarrow as pa

    from hyperswitch.results import fs as hfs
    from hyperswitch.results.store import read_parquet, write_table_atomic

    uri, _ = s3
    key = open_storage(f"{uri}/race/t.parquet")
    small = pa.table({"x": list(range(10))})
    large = pa.table({"x": list(range(20000)), "y": [str(i) for i in range(20000)]})
    write_table_atomic(small, key)
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            for t in (large, small):
                write_table_atomic(t, key)

    def reads(n: int) -> tuple[int, int]:
        ok = torn = 0
        for _ in range(n):
            try:
                t = read_parquet(key)
            except StudyFileError:
                torn += 1
                continue
            assert t.equals(small) or t.equals(large)
            ok += 1
        return ok, torn

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        monkeypatch.setattr(hfs, "READ_TRIES", 1)
        deadline, torn = time.monotonic() + 60, 0
        while not torn:  # the race exists: a single read can come back cut
            assert time.monotonic() < deadline, "no read raced a write"
            torn += reads(20)[1]
        monkeypatch.setattr(hfs, "READ_TRIES", 5)
        assert reads(100) == (100, 0)
    finally:
        stop.set()
        th.join(timeout=30)


def test_a_truncated_object_is_named_in_one_line(s3, capsys):
    uri, _ = s3
    store = StudyStore(f"{uri}/runs/broken")
    _fill(store)
    data = store.table_path("steps").read_bytes()
    store.table_path("steps").write_bytes(data[: len(data) // 2])
    assert main(["export", "broken", "--storage", f"{uri}/runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{uri}/runs/broken/steps.parquet: not a readable Parquet file" in err, err


def test_cache_follows_object_metadata_even_within_one_second(s3):
    """S3 reports whole seconds: a rewrite of the same size in the same second looks unchanged by its metadata.
    The versions of young objects carry the current second, so the new value shows within a second."""
    uri, _ = s3
    store = StudyStore(f"{uri}/runs/c")
    store.write_meta({"name": "c", "metric": "val_accuracy", "mode": "max"})
    row = {"trial_id": "c0-s0", "config_id": "c0", "seed": 0, "status": "running", "val_accuracy": 0.25}
    deadline = time.monotonic() + 30
    while True:  # two writes of one size in one second of the store's clock: what metadata cannot tell apart
        clear_cache()
        store.write_trial_parts(row, [{"step": 1, "loss": 1.0}], [])
        before = store.part_path("c0-s0", "trials").stat()
        assert study_info(store.root).trials.val_accuracy.tolist() == [0.25]
        store.write_trial_parts({**row, "val_accuracy": 0.75}, [{"step": 1, "loss": 2.0}], [])
        after = store.part_path("c0-s0", "trials").stat()
        if after == before:
            break
        assert time.monotonic() < deadline, "no two writes within one second of the store's clock"
    assert after.st_mtime_ns % 1_000_000_000 == 0  # whole seconds, as S3 reports them
    deadline = time.monotonic() + 5
    while study_info(store.root).trials.val_accuracy.tolist() != [0.75]:
        assert time.monotonic() < deadline, "the cache kept the old row"
        time.sleep(0.05)
    while study_table(store.root, "steps", ["loss"]).loss.tolist() != [2.0]:
        assert time.monotonic() < deadline, "the cache kept the old steps"
        time.sleep(0.05)


def test_checkpoints_on_s3_are_found_and_dropped_as_in_a_folder(s3):
    """What the sweep does with Ray's checkpoints under the study (Tune: tune/session-N/<trial>/, Train:
    train/<trial>/): the most advanced one resumes a trial; a finished trial's are dropped, Train's own files kept."""
    import io

    import torch

    from hyperswitch.search.runner import _drop_checkpoints, _forget_run
    from hyperswitch.search.trial import checkpoint_roots
    from hyperswitch.train.driver import latest_checkpoint

    uri, _ = s3
    root = open_storage(f"{uri}/runs/ck")

    def state(step: int) -> bytes:
        buf = io.BytesIO()
        torch.save({"step": step, "w": torch.ones(2) * step}, buf)
        return buf.getvalue()

    (root / "tune/session-1/c0-s0/checkpoint_000000/state.pt").write_bytes(state(10))
    (root / "tune/session-2/c0-s0/checkpoint_000003/state.pt").write_bytes(state(30))
    (root / "tune/session-2/c0-s0/checkpoint_000004/state.pt").write_bytes(b"cut short by a kill")
    (root / "train/c0-s0/checkpoint_2026/state.pt").write_bytes(state(20))
    (root / "train/c0-s0/checkpoint_manager_snapshot.json").write_bytes(b"{}")
    (root / "tune/session-1/c1-s0/checkpoint_000000/state.pt").write_bytes(state(5))
    roots = checkpoint_roots(str(root), "c0-s0")
    assert [str(r) for r in roots] == [f"{uri}/runs/ck/tune/session-{i}/c0-s0" for i in (1, 2)] + [
        f"{uri}/runs/ck/train/c0-s0"]
    best = latest_checkpoint(roots)
    assert best is not None and best["step"] == 30 and best["w"].tolist() == [30.0, 30.0]
    _drop_checkpoints(root, "c0-s0")
    assert set(objects(f"{uri}/runs/ck")) == {"train/c0-s0/checkpoint_manager_snapshot.json",
                                               "tune/session-1/c1-s0/checkpoint_000000/state.pt"}
    _forget_run(root, "c1-s0")
    assert set(objects(f"{uri}/runs/ck")) == {"train/c0-s0/checkpoint_manager_snapshot.json"}


# --- the lock -----------------------------------------------------------------------------------------------

def _record(**kw):
    now = time.time()
    return {"host": "elsewhere", "pid": 1, "boot_id": "b", "pid_namespace": "p", "created": "then",
            "heartbeat_unix": now, "token": "theirs", **kw}


def test_lock_on_s3_refuses_a_second_driver_and_is_given_back(s3):
    uri, _ = s3
    root = open_storage(f"{uri}/runs/lk")
    first = StudyLock(root, heartbeat_s=0.2)
    assert isinstance(first, ObjectStoreLock)
    first.settle_s = 0.3
    with first:
        held = json.loads((root / ".lock").read_bytes())
        assert held["token"] == first.token and held["pid"] == os.getpid()
        second = ObjectStoreLock(str(root), settle_s=0.3)
        with pytest.raises(StudyLocked, match=r"is in use by another sweep driver: host .*, pid "):
            second.acquire()
        beat = held["heartbeat_unix"]
        deadline = time.monotonic() + 10
        while json.loads((root / ".lock").read_bytes())["heartbeat_unix"] == beat:  # the heartbeat goes on
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert not (root / ".lock").exists()
    with ObjectStoreLock(root, settle_s=0.3) as again:
        assert again.record is not None and not again.notes


def test_contenders_on_s3_one_wins(s3):
    """Drivers that find no lock at the same moment all write theirs; the read-back leaves exactly one holder."""
    uri, _ = s3
    root = open_storage(f"{uri}/runs/race")
    n = 4
    locks = [ObjectStoreLock(root, settle_s=1.0) for _ in range(n)]
    gate = threading.Barrier(n)
    outcome: dict[int, str] = {}

    def contend(i: int) -> None:
        gate.wait()
        try:
            locks[i].acquire()
            outcome[i] = "held"
        except StudyLocked:
            outcome[i] = "refused"

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(outcome.values()) == ["held"] + ["refused"] * (n - 1), outcome
        [winner] = [i for i, o in outcome.items() if o == "held"]
        assert json.loads((root / ".lock").read_bytes())["token"] == locks[winner].token
    finally:
        for lock in locks:
            lock.release()


def test_stale_and_dead_holders_on_s3_are_taken_over(s3):
    uri, _ = s3
    root = open_storage(f"{uri}/runs/stale")
    lock_obj = root / ".lock"
    lock_obj.write_bytes(json.dumps(_record()).encode())  # another host, heartbeat now: alive
    with pytest.raises(StudyLocked, match="host elsewhere"):
        ObjectStoreLock(root, settle_s=0.2).acquire()
    lock_obj.write_bytes(json.dumps(_record(heartbeat_unix=time.time() - 600)).encode())
    with ObjectStoreLock(root, settle_s=0.2) as lock:
        assert "its last heartbeat is 600 s old" in lock.notes[0]
    # this host, a process that is gone: at once, whatever its heartbeat
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    me = ObjectStoreLock(root)
    dead = _record(host=me.host, boot_id=me.boot_id, pid_namespace=me.pidns, pid=int(child.stdout))
    lock_obj.write_bytes(json.dumps(dead).encode())
    with ObjectStoreLock(root, settle_s=0.2) as lock:
        assert f"its process {dead['pid']} on this host is gone" in lock.notes[0]
    lock_obj.write_bytes(json.dumps(dead).encode())
    assert release_dead_holder(str(root), dead["pid"]) and not lock_obj.exists()


def test_a_holder_on_s3_notices_a_lock_taken_from_it(s3, capsys):
    uri, _ = s3
    root = open_storage(f"{uri}/runs/lost")
    lock = ObjectStoreLock(root, settle_s=0.2, heartbeat_s=0.1)
    with lock:
        (root / ".lock").write_bytes(json.dumps(_record()).encode())
        deadline = time.monotonic() + 10
        while lock.lost is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "host elsewhere" in lock.lost
    assert json.loads((root / ".lock").read_bytes())["token"] == "theirs"  # release leaves another's lock
    assert "is no longer this driver's" in capsys.readouterr().err


# --- commands and the dashboard on an S3 study ----------------------------------------------------------------

def test_commands_and_dashboard_read_an_s3_study(s3, tmp_path, capsys):
    from dashboards._shared import Context
    from dashboards.app import create_app
    from dashboards.pages import PAGES, curves, parameters

    uri, env = s3
    storage = open_storage(f"{uri}/runs")
    write_study(storage)  # 4 finished trials, 1 running; some compacted, some parts
    assert main(["studies", "--storage", f"{uri}/runs", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == "part" and row["done"] == 4 and row["best"] == 0.94
    make_study(tmp_path, storage=f"{uri}/runs")  # a study as prepare_study writes it: export rebuilds its policy
    assert main(["export", "fab", "--storage", f"{uri}/runs", "-o", str(tmp_path / "p.yaml")]) == 0
    doc = (tmp_path / "p.yaml").read_text()
    assert f"study_folder: {uri}/runs/fab" in doc and "configuration c0001" in capsys.readouterr().out
    from hyperswitch.figures.report import write_report  # what `hyperswitch report` does, less the PNG files

    path = find_study("part", f"{uri}/runs")
    StudyStore(path).check_readable()
    entries = write_report(path, tmp_path / "report", png=False)
    assert len([e for e in entries if e.html]) >= 5 and (tmp_path / "report" / "index.html").is_file()
    ctx = Context(storage)
    assert ctx.study_names() == ["fab", "part"] and ctx.study_path("part") == storage / "part"
    for page in PAGES:
        assert page.layout(ctx, "part") is not None, page.name
    fig = parameters.main_figure(ctx, "part", "val_accuracy", ["lr"], "std")
    assert "4 finished runs" in fig.layout.title.subtitle.text
    fig = curves.figure(ctx, "part", "loss", "step", "policy", "std", [], [])
    assert "5 runs" in fig.layout.title.subtitle.text
    client = create_app(f"{uri}/runs", warm=False).server.test_client()
    assert client.get("/").status_code == 200
    # the command as a user runs it, in its own process, with the AWS environment
    out = subprocess.run([sys.executable, "-m", "hyperswitch", "studies", "--storage", f"{uri}/runs"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "part" in out.stdout and "4/6" in out.stdout and "fab" in out.stdout, \
        out.stdout + out.stderr


def test_reads_racing_a_delete_see_a_whole_object_or_none(s3):
    """Compaction deletes parts while readers list and read them: an object deleted between pyarrow's HEAD and its
    GET raised OSError("... RESOURCE_NOT_FOUND during GetObject ...") and failed a reader (seen in the S3 sweep
    test); it reads as gone (None), like a local file removed before it was opened."""
    import pyarrow as pa

    from hyperswitch.results.store import read_parquet, write_table_atomic

    uri, _ = s3
    key = open_storage(f"{uri}/gone/t.parquet")
    table = pa.table({"x": list(range(20000)), "y": [str(i) for i in range(20000)]})
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            write_table_atomic(table, key)
            key.unlink(missing_ok=True)

    th = threading.Thread(target=churn, daemon=True)
    th.start()
    seen: dict[str, int] = {"whole": 0, "gone": 0}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and min(seen.values()) < 20:
            got = read_parquet(key)  # never raises
            if got is None:
                seen["gone"] += 1
            else:
                assert got.equals(table)
                seen["whole"] += 1
    finally:
        stop.set()
        th.join(timeout=30)
    assert seen["whole"] >= 1 and seen["gone"] >= 1, seen
