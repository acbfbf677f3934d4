"""--resume accepts the study's space file after edits that leave the YAML document unchanged (comments, blank
lines, key order, quoting) and refuses one in which any value changed (prepare_study, the check before any trial)."""

from __future__ import annotations

import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.search.runner import prepare_study
from hyperswitch.search.space import space_from_text

TEXT = """\
# a study
name: resume_text
description: resume after a comment edit
workload: {name: digits_mlp}
policy: {type: single, optimizer: {name: sgdm, lr: $lr}}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: categorical, choices: [0.01, 0.1]}
search: {algorithm: grid}
seeds: 1
"""


def test_resume_ignores_comments_and_layout_but_not_values(tmp_path):
    store = prepare_study(space_from_text(TEXT, "a.yaml"), tmp_path, None, resume=False)
    assert store.meta_path.exists()
    edited = ("# a study, now with a longer header\n# and a second line\n\n"
              + TEXT.replace("# a study\n", "").replace("seeds: 1", "seeds: 1   # n")
              .replace("{name: digits_mlp}", "{name: 'digits_mlp'}")
              .replace("train: {steps: 20, eval_every: 10}", "train:\n  eval_every: 10\n  steps: 20"))
    again = prepare_study(space_from_text(edited, "a.yaml"), tmp_path, None, resume=True)
    assert again.root == store.root
    changed = TEXT.replace("choices: [0.01, 0.1]", "choices: [0.01, 0.3]")
    with pytest.raises(ConfigError, match="the search space differs from the one study 'resume_text'"):
        prepare_study(space_from_text(changed, "a.yaml"), tmp_path, None, resume=True)
