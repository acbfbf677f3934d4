"""The data-parallel worker group a multi-worker sweep keeps across its trials (``hyperswitch.train.group``), on a
real local Ray: successive trials run on the same two worker processes, ASHA stops some of them on every rank at
once, and each trial's results are those of a fresh group and (up to float round-off) of one process."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from hyperswitch.switching import Policy
from hyperswitch.train import driver
from hyperswitch.train.loop import train_run

pytestmark = pytest.mark.slow

SPACE = """\
name: kept
workload: {{name: "tests.train.pid_workload:pid_digits", pid_dir: "{pid_dir}"}}
policy: {{type: single, optimizer: {{name: sgdm, lr: $lr}}}}
train: {{steps: 60, eval_every: 10}}
parameters:
  lr: {{type: categorical, choices: [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]}}
search: {{algorithm: grid, seed: 0}}
seeds: 1
scheduler: {{type: asha, grace_period: 10, reduction_factor: 2}}
resources: {{workers: 2, cpus_per_worker: 0.49}}
max_concurrent: 1
"""


def test_trials_reuse_one_group_and_match_fresh_runs(local_ray, space_file, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    space = load_space(space_file(SPACE.format(pid_dir=pids)))
    study = run_sweep(space, storage=tmp_path / "runs", out=lambda s: None)
    t = study.trials.set_index("trial_id")
    assert study.meta["status"] == "completed" and len(t) == 6 and set(t.workers) == {2}
    assert set(t.status) == {"completed", "stopped"} and (t.status == "stopped").any()  # ASHA stopped some
    # every trial's workload was built by the same two processes, once per rank and trial
    built = Counter(p.name.split("-")[0] for p in pids.iterdir())
    assert len(built) == 2 and set(built.values()) == {6}, built
    # a stopped trial stopped on both ranks at a rung, each of its steps recorded once
    steps = study.steps.groupby("trial_id").step.agg(["count", "max", "nunique"])
    for tid, row in t.iterrows():
        assert steps.loc[tid, "count"] == steps.loc[tid, "nunique"] == row.steps_done == steps.loc[tid, "max"]
        assert row.steps_done == 60 if row.status == "completed" else row.steps_done in (10, 20, 40)

    # the same configurations: the last trial on a fresh 2-worker group gives the same numbers bit for bit; every
    # trial in one process the same up to float round-off
    wl = dict(space.workload, pid_dir="")
    for tid, row in t.iterrows():
        policy = {"type": "single", "optimizer": {"name": "sgdm", "lr": float(row.lr)}}
        ran = study.steps[study.steps.trial_id == tid].sort_values("step")
        one = train_run(wl, Policy.from_spec(policy), {"steps": int(row.steps_done), "eval_every": 10}, 0)
        assert len(one.steps) == len(ran)
        for a, b in zip([r["loss"] for r in one.steps], ran.loss, strict=True):
            assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), (tid, a, b)
    last = t.index.max()
    policy = {"type": "single", "optimizer": {"name": "sgdm", "lr": float(t.lr[last])}}
    job = driver.CliJob(wl, policy, {"steps": int(t.steps_done[last]), "eval_every": 10}, seed=0)
    fresh = driver.run_data_parallel(job, workers=2, use_gpu=False, cpus_per_worker=0.49, gpus_per_worker=0,
                                     max_failures=0, in_tune=False)
    ran = study.steps[study.steps.trial_id == last].sort_values("step")
    assert [r["loss"] for r in fresh["steps"]] == list(ran.loss)
    assert fresh["summary"]["val_accuracy"] == t.val_accuracy[last]


def test_group_outside_tune_runs_successive_jobs_on_the_same_workers(local_ray):
    from hyperswitch.train.group import GroupSpec, WorkerGroup

    group = WorkerGroup(GroupSpec(workers=2, use_gpu=False, cpus_per_worker=0.49, gpus_per_worker=0))
    wl = {"name": "tests.train.pid_workload:pid_digits"}
    seen: list[int] = []
    try:
        results = []
        for lr in (0.1, 0.01):
            job = driver.CliJob(wl, {"type": "single", "optimizer": {"name": "sgdm", "lr": lr}},
                                {"steps": 20, "eval_every": 10}, seed=1)
            results.append(group.run(job, resume=None, on_report=lambda m, s: seen.append(m["step"]), threads=1,
                                     max_failures=0, resume_state=lambda: None))
            assert group.started == 1 and len(set(group.pids)) == 2
        assert seen == [10, 10]  # rank 0's report at each evaluation but the last
        assert [r["summary"]["steps_done"] for r in results] == [20, 20]
        assert results[0]["steps"][0]["loss"] == results[1]["steps"][0]["loss"]  # same data and initial model
        assert results[0]["steps"][-1]["loss"] != results[1]["steps"][-1]["loss"]
        # a stop answered at the first report ends the run on both ranks; the group takes the next job
        job = driver.CliJob(wl, {"type": "single", "optimizer": {"name": "sgdm", "lr": 0.1}},
                            {"steps": 40, "eval_every": 10}, seed=1)

        def stop(metrics, state):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            group.run(job, resume=None, on_report=stop, threads=1, max_failures=0, resume_state=lambda: None)
        again = group.run(job, resume=None, on_report=lambda m, s: None, threads=1, max_failures=0,
                          resume_state=lambda: None)
        assert again["summary"]["steps_done"] == 40 and group.started == 1
    finally:
        group.shutdown()


def test_gpus_asked_of_a_cluster_without_gpus_is_one_line(local_ray, space_file, tmp_path):
    from hyperswitch.errors import ConfigError

    text = SPACE.format(pid_dir="").replace("cpus_per_worker: 0.49}", "cpus_per_worker: 0.49, gpus_per_worker: 1}")
    with pytest.raises(ConfigError, match=r"resources\.gpus_per_worker: asks for 1 GPU per worker but the Ray "
                       r"cluster has none; set it to 0 to train on CPUs") as err:
        run_sweep(load_space(space_file(text)), storage=tmp_path / "runs", out=lambda s: None)
    assert "\n" not in str(err.value)
