"""A sweep whose storage is an S3 bucket (moto's standalone S3 server, its own process on 127.0.0.1; pyarrow's real
S3FileSystem; a real local Ray): the `hyperswitch sweep` program killed mid-sweep (SIGKILL of its whole process
group), then `--resume` finishes with every trial once, continuing cut-off trials from their Ray checkpoints on
S3; then `hyperswitch studies`, `hyperswitch export` and the dashboard read the study from the bucket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.fs as pafs
import pytest

from hyperswitch.cli import main
from hyperswitch.results import open_study
from hyperswitch.results.cache import clear_cache
from hyperswitch.results.fs import open_storage

pytestmark = pytest.mark.slow

STEPS = 150
SPACE = f"""\
name: tiny
workload: {{name: digits_mlp, batch_size: 32}}
policy: {{type: single, optimizer: {{name: sgdm, lr: $lr, momentum: 0.9}}}}
train: {{steps: {STEPS}, eval_every: 10}}
parameters:
  lr: {{type: float, low: 0.01, high: 0.2, log: true}}
search: {{algorithm: tpe, samples: 4, seed: 1}}
seeds: 1
max_concurrent: 2
"""


def test_sweep_on_s3_killed_then_resumed_then_read(s3, space_file, tmp_path, ray_tmp, capsys):
    bucket, env = s3
    storage = f"{bucket}/runs"
    study = open_storage(f"{storage}/tiny")
    fs, root = study.fs, study.path
    env = {**env, "TMPDIR": str(ray_tmp), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hyperswitch", "sweep", str(space_file(SPACE)), "--storage", storage]

    def start(*extra: str) -> subprocess.Popen:
        return subprocess.Popen([*cmd, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)

    def keys(under: str) -> list[str]:
        sel = pafs.FileSelector(f"{root}/{under}", recursive=True, allow_not_found=True)
        return [i.path[len(root) + 1:] for i in fs.get_file_info(sel) if i.type == pafs.FileType.File]

    def checkpointed(tid: str) -> bool:
        return any(k.startswith("tune/session-") and f"/{tid}/checkpoint_" in k and k.endswith("/state.pt")
                   for k in keys("tune"))

    def cut_candidates() -> set[str]:  # running, with a checkpoint on S3 and at least half its steps to go
        if not (study / "study.json").exists():
            return set()
        now = open_study(study, include_running=True)
        if not len(now.finished()):
            return set()
        ids = set(now.trials[now.trials.status == "running"].trial_id)
        last = now.steps[now.steps.trial_id.isin(ids)].groupby("trial_id").step.max()
        return {t for t in ids if last.get(t, STEPS) < STEPS // 2 and checkpointed(t)}

    proc = start()
    deadline = time.monotonic() + 240
    while not cut_candidates():  # kill when a finished trial is saved and a running one can continue
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no moment with a finished trial and a checkpointed running one: {proc.stdout.read()}")
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the command, its sweep child, its Ray: the whole process group
    proc.wait(timeout=30)
    proc.stdout.close()

    after_kill = open_study(study, include_running=True)
    kept = after_kill.finished()
    kept_walls = dict(zip(kept.trial_id, kept.wall_time_s, strict=True))
    running = set(after_kill.trials[after_kill.trials.status == "running"].trial_id)
    cut = {t for t in running if checkpointed(t)}
    assert 1 <= len(kept) < 4 and cut, (len(kept), running)
    lock = json.loads((study / ".lock").read_bytes())  # the killed driver's lock is still there
    assert lock["pid"] != proc.pid and after_kill.meta["status"] == "running"

    proc = start("--resume")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert f"its process {lock['pid']} on this host is gone" in out, out  # the dead driver's lock taken over at once
    assert f"resuming tiny: {len(kept)} trials finished and kept" in out, (sorted(kept_walls), sorted(running), out)

    final = open_study(study)
    t = final.trials
    assert final.meta["status"] == "completed" and final.meta["sessions"] == 2
    assert len(t) == 4 and t.trial_id.is_unique and set(t.status) == {"completed"}
    assert sorted(t.config_id) == ["c0000", "c0001", "c0002", "c0003"]
    steps = final.steps.groupby("trial_id").step.agg(["count", "nunique", "min", "max"])
    assert len(steps) == 4 and (steps["count"] == STEPS).all() and (steps["nunique"] == STEPS).all(), steps
    walls = dict(zip(t.trial_id, t.wall_time_s, strict=True))
    assert all(walls[k] == w for k, w in kept_walls.items())  # finished before the kill: not run again
    restarts = dict(zip(t.trial_id, t.restarts, strict=True))
    assert all(restarts[k] == 1 for k in cut), restarts  # continued from their checkpoints on S3
    assert all(restarts[k] == 0 for k in kept_walls)
    with capsys.disabled():  # the counts, for a reader of the run (-s)
        print(f"\nS3 kill/resume: {len(kept)} finished trials kept, {len(cut)} cut off and continued from "
              f"checkpoints, {len(running) - len(cut)} restarted; after --resume {len(t)} trials, "
              f"{int(steps['count'].sum())} step rows, restarts {sorted(restarts.items())}")
    left = keys("")
    assert not [k for k in left if k.startswith("parts/")] and ".lock" not in left
    # the cut-off trials' checkpoints (both sessions') dropped once they finished; (a trial whose last part was
    # written but not yet settled by the killed driver keeps its checkpoints, on S3 as in a local folder)
    assert not [k for k in left if "/checkpoint_" in k and k.split("/")[2] in cut], left
    assert {"study.json", "trials.parquet", "steps.parquet", "events.parquet"} <= set(left)

    # the commands and the dashboard read the study from the bucket
    out = subprocess.run([sys.executable, "-m", "hyperswitch", "studies", "--storage", storage], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.split("\n")[1].split()[:3] == ["tiny", "completed", "4/4"], out
    capsys.readouterr()
    assert main(["export", "tiny", "--storage", storage, "-o", str(tmp_path / "best.yaml")]) == 0
    best = t.loc[t.val_accuracy.idxmax()]
    assert f"configuration {best.config_id}" in capsys.readouterr().out
    assert f"study_folder: {storage}/tiny" in (tmp_path / "best.yaml").read_text()

    from dashboards._shared import Context
    from dashboards.app import create_app
    from dashboards.pages import PAGES, curves

    clear_cache()
    ctx = Context(open_storage(storage))
    for page in PAGES:
        assert page.layout(ctx, "tiny") is not None, page.name
    fig = curves.figure(ctx, "tiny", "loss", "step", "policy", "std", [], [])
    assert "4 runs" in fig.layout.title.subtitle.text
    client = create_app(storage, warm=False).server.test_client()
    assert client.get("/").status_code == 200
