"""A trial whose own code failed stays ``error`` on ``--resume`` and runs again, from the start, only with
``--resume --retry-errors`` (a real local Ray; the user workload ``tests/search/flaky_workload.py``)."""

from __future__ import annotations

import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from tests.search.test_faults import assert_each_step_once

pytestmark = pytest.mark.slow

SPACE = """\
name: flaky
workload: {{name: "tests.search.flaky_workload:flaky", hidden: $hidden, fail_file: "{marker}", batch_size: 20}}
policy: {{type: single, optimizer: {{name: sgd, lr: 0.1}}}}
train: {{steps: 40, eval_every: 10}}
parameters:
  hidden: {{type: categorical, choices: [8, 16]}}
search: grid
seeds: 1
"""


def test_failed_trial_runs_again_only_with_retry_errors(local_ray, space_file, tmp_path):
    marker = tmp_path / "broken"
    marker.touch()
    space = load_space(space_file(SPACE.format(marker=marker)))
    storage = tmp_path / "runs"
    with pytest.raises(ConfigError, match="--retry-errors"):  # only with --resume; nothing is made
        run_sweep(space, storage=storage, retry_errors=True, out=lambda s: None)
    assert not storage.exists()

    first = run_sweep(space, storage=storage, out=lambda s: None).trials
    assert dict(zip(first.hidden, first.status, strict=True)) == {8: "completed", 16: "error"}
    failed = first[first.status == "error"].iloc[0]
    assert "the user's code failed" in failed.error

    marker.unlink()  # the cause is fixed; a plain --resume still keeps the failure as it is
    lines: list[str] = []
    kept = run_sweep(space, storage=storage, resume=True, out=lines.append).trials
    assert "nothing left to run" in lines
    assert kept.set_index("trial_id").status.to_dict() == first.set_index("trial_id").status.to_dict()

    lines.clear()
    final = run_sweep(space, storage=storage, resume=True, retry_errors=True, out=lines.append)
    assert any("1 trials finished and kept, 1 to run" in ln and "1 that failed: run again" in ln for ln in lines)
    t = final.trials.set_index("trial_id")
    assert set(t.status) == {"completed"} and len(t) == 2
    ok = first[first.status == "completed"].iloc[0]
    assert t.loc[ok.trial_id, "wall_time_s"] == ok.wall_time_s  # the completed trial did not run again
    assert t.loc[failed.trial_id, "restarts"] == 0  # from the start, not from a checkpoint of the failed run
    assert_each_step_once(final, 40)
