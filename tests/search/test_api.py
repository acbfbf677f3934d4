"""The Python sweep API (hyperswitch.sweep / open_study / load_space): a real sweep on the embedded local Ray that
the call starts itself, from a mapping, read back as pandas; resume of a finished study runs nothing; a bad
space is the command's one-line ConfigError; the example a notebook user pastes (examples/python_api.py) runs."""

from __future__ import annotations

import pytest
import yaml

import hyperswitch as hs
from hyperswitch.errors import ConfigError

SPACE = {
    "name": "api_demo",
    "workload": {"name": "digits_mlp", "batch_size": 64},
    "policy": {"type": "single", "optimizer": {"name": "sgdm", "lr": "$lr", "momentum": 0.9}},
    "train": {"steps": 20, "eval_every": 10},
    "parameters": {"lr": {"type": "categorical", "choices": [0.05, 0.1]}},
    "search": "grid",
    "seeds": 2,
}


def test_a_bad_space_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"parameters.lr.*choices"):
        hs.sweep({**SPACE, "parameters": {"lr": {"type": "categorical", "choices": []}}}, storage=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written



def test_load_space_reads_the_file_a_mapping_stands_for(tmp_path):
    from hyperswitch.search.api import as_space

    path = tmp_path / "api_demo.yaml"
    path.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    from_file, from_mapping = hs.load_space(path), as_space(SPACE)
    assert from_file.n_configurations() == from_mapping.n_configurations() == 2
    assert from_file.parameters == from_mapping.parameters and from_file.seeds == from_mapping.seeds == [0, 1]


@pytest.mark.slow
def test_the_notebook_example_runs(tmp_path, capsys):
    import runpy

    import ray

    from tests._helpers import ROOT

    had_ray = ray.is_initialized()  # another test's session-wide Ray (the local_ray fixture), or none
    example = runpy.run_path(str(ROOT / "examples" / "python_api.py"), run_name="example")
    study = example["main"](tmp_path)
    # an embedded Ray the call started is shut down with it; a Ray the caller had is left running
    assert ray.is_initialized() == had_ray
    out = capsys.readouterr().out
    assert len(study.trials) == 8 and set(study.trials.status) == {"completed"}
    assert isinstance(study, hs.Study) and study.meta["status"] == "completed"
    assert sorted(study.trials.trial_id) == [f"c000{c}-s{s}" for c in range(4) for s in (0, 1)]
    assert f"best trial {study.best_trial()['trial_id']}" in out and f"{8 * 100} step rows" in out
    means = study.trials.groupby(["lr", "switch_at"])["val_accuracy"].mean()
    assert len(means) == 4 and means.notna().all()
    lines: list[str] = []
    again = hs.sweep(example["SPACE"], storage=tmp_path, resume=True, progress=lines.append)  # nothing left to run
    assert again.trials.equals(study.trials) and lines  # the command's progress lines, to the callback
    assert hs.open_study(tmp_path / "api_demo").trials.equals(study.trials)
