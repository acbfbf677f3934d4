"""study.json records the space's parsed distributions when the study is created; export and the figures read them
from there (``study_distributions``), and a study from before they were recorded reads the same from its space's
text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hyperswitch.results import open_study, study_distributions
from hyperswitch.results.distributions import sampled_names
from hyperswitch.results.store import StudyStore

ROOT = Path(__file__).resolve().parents[2]

SPACE = """\
name: dist
workload: {name: digits_mlp, batch_size: $batch_size}
policy:
  type: switch
  phase1: {name: adam, lr: $lr_adam}
  phase2: {name: sgdm, lr: $lr2, momentum: $momentum}
  switch: {at: $at}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.001, high: 0.5, log: true}
  momentum: {type: float, low: 0.5, high: 0.9, step: 0.2}
  at: {type: int, low: 0, high: 20.0, step: 5}
  batch_size: {type: categorical, choices: [32, 64]}
  lr_adam: 0.001
derived:
  half: lr / 2
  lr2: half * 2
search: {algorithm: random, samples: 3, seed: 0}
seeds: 2
"""

EXPECTED = [
    {"name": "lr", "type": "float", "low": 0.001, "high": 0.5, "log": True, "step": None},
    {"name": "momentum", "type": "float", "low": 0.5, "high": 0.9, "log": False, "step": 0.2},
    {"name": "at", "type": "int", "low": 0, "high": 20, "log": False, "step": 5},
    {"name": "batch_size", "type": "categorical", "choices": [32, 64]},
    {"name": "lr_adam", "type": "fixed", "value": 0.001},
    {"name": "half", "type": "derived", "expression": "lr / 2"},
    {"name": "lr2", "type": "derived", "expression": "half * 2"},
]


def make_study(folder: Path, space_text: str = SPACE) -> Path:
    """A finished study written by the sweep's own ``prepare_study`` and the real store (no Ray, no training)."""
    from hyperswitch.search.runner import prepare_study
    from hyperswitch.search.space import space_from_text

    space = space_from_text(space_text, str(folder / "dist.yaml"))
    store = prepare_study(space, folder / "runs", None, resume=False)
    for c, (lr, mom, at, bs) in enumerate([(0.001, 0.5, 0, 32), (0.01, 0.7, 5, 64), (0.1, 0.9, 10, 32)]):
        for seed in (0, 1):
            values = space.resolve({"lr": lr, "momentum": mom, "at": at, "batch_size": bs})
            row = {"trial_id": f"c{c:04d}-s{seed}", "config_id": f"c{c:04d}", "seed": seed, "status": "completed",
                   "workload": "digits_mlp", "policy_type": "switch", "optimizers": "adam,sgdm",
                   **{n: values[n] for n in space.parameter_names},
                   "val_accuracy": 0.5 + 0.1 * c + 0.01 * seed, "wall_time_s": 1.0 + c}
            store.write_trial_parts(row, [{"step": 1, "loss": 1.0}], [])
    store.compact()
    store.update_meta(status="completed")
    return store.root


def test_a_new_study_records_its_parsed_distributions(tmp_path):
    root = make_study(tmp_path)
    meta = json.loads((root / "study.json").read_text())
    assert meta["distributions"] == EXPECTED  # as parsed: int bounds as ints, log/step filled in, derived in order
    dists = study_distributions(meta)
    assert list(dists) == [d["name"] for d in EXPECTED]
    assert sampled_names(dists) == ["lr", "momentum", "at", "batch_size"]
    assert open_study(root).distributions == dists


def test_an_old_study_reads_the_same_distributions_from_its_space_text(tmp_path):
    root = make_study(tmp_path)
    meta = StudyStore(root).read_meta()
    old = {k: v for k, v in meta.items() if k != "distributions"}
    assert study_distributions(old) == study_distributions(meta)
    assert list(study_distributions(old)) == list(study_distributions(meta))  # the space's order
    assert study_distributions({}) == {} and study_distributions({"space_text": "not: [valid"}) == {}


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_space_reads_the_same_recorded_or_from_its_text(path):
    from hyperswitch.search.space import load_space

    space = load_space(path)
    recorded = study_distributions(json.loads(json.dumps({"distributions": space.distributions()})))
    from_text = study_distributions({"space_text": space.text, "parameter_names": space.parameter_names})
    assert recorded == from_text and list(recorded) == list(from_text)
    assert sampled_names(recorded) == space.sampled_names


def _exported(root: Path, out: Path) -> str:
    from hyperswitch.export import export_study

    texts = [r.text for r in export_study(root, output=str(out) + "/", top=2, force=True)]
    return "\n".join(line for t in texts for line in t.splitlines()
                     if not line.startswith("# Exported by") and "exported_at" not in line)


def test_export_reads_the_distributions_from_study_json_and_old_studies_export_the_same(tmp_path):
    root = make_study(tmp_path)
    new = _exported(root, tmp_path / "new")
    assert "batch_size: 32" in new or "batch_size: 64" in new
    store = StudyStore(root)
    meta = store.read_meta()
    store.write_meta({k: v for k, v in meta.items() if k != "distributions"})
    assert _exported(root, tmp_path / "old") == new
    # export takes the sampled names and choices from study.json: a recorded choice list is what it matches
    meta["distributions"] = [dict(d, choices=[16, 128]) if d["name"] == "batch_size" else d
                             for d in meta["distributions"]]
    store.write_meta(meta)
    from hyperswitch.errors import ConfigError

    with pytest.raises(ConfigError, match=r"batch_size: is not one of the space's choices \[16, 128\]"):
        _exported(root, tmp_path / "changed")


def test_importance_weighs_log_ranges_by_the_recorded_distributions(tmp_path):
    from hyperswitch.figures import parameter as fp
    from hyperswitch.results import study_info

    info = study_info(make_study(tmp_path))
    assert fp.log_hints(info.distributions) == {"lr": True, "momentum": False, "at": False}
    # the log hint reaches Optuna's distributions: lr on a log scale, momentum not
    conf = info.trials.groupby("config_id").first()
    dists = fp._distributions(conf, ["lr", "momentum"], fp.log_hints(info.distributions))
    assert dists["lr"].log and not dists["momentum"].log
