"""A space is parsed and validated once per process for each (text, source): validation probes every range end
and choice (building policies on a probe model), and a trial asks for its space several times. Each caller still
gets its own copy, and an invalid space is an error every time."""

from __future__ import annotations

import dataclasses

import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.search import space as sp

TEXT = """\
name: once
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: single
  optimizer: {name: sgdm, lr: $lr, momentum: 0.9}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.01, high: 0.5, log: true}
"""


@pytest.fixture()
def probes(monkeypatch):
    """Count the validating probes (the costly part of a parse)."""
    calls = []
    real = sp._probe

    def counting(space, *args):
        calls.append(space.source)
        return real(space, *args)

    monkeypatch.setattr(sp, "_probe", counting)
    sp._validated_space.cache_clear()
    yield calls
    sp._validated_space.cache_clear()


def test_the_same_text_is_validated_once(probes, tmp_path):
    path = tmp_path / "once.yaml"
    path.write_text(TEXT)
    a = sp.space_from_text(TEXT, str(path))
    b = sp.space_from_text(TEXT, str(path))
    c = sp.load_space(path)  # the same text from the same file
    assert probes == [str(path)]
    assert a.text == b.text == c.text == TEXT and a.sampled_names == c.sampled_names == ["lr"]
    sp.space_from_text(TEXT, "elsewhere.yaml")  # another source: its errors name another file
    sp.space_from_text(TEXT.replace("0.5", "0.4"), str(path))  # another text
    assert probes == [str(path), "elsewhere.yaml", str(path)]


def test_each_caller_gets_its_own_copy(probes):
    a = sp.space_from_text(TEXT, "s.yaml")
    a.policy["optimizer"]["momentum"] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.train.steps = 1  # a TrainSpec is frozen: replaced, never changed in place
    a.train = dataclasses.replace(a.train, steps=1)
    a.parameters.pop("lr")
    b = sp.space_from_text(TEXT, "s.yaml")
    assert b.policy["optimizer"]["momentum"] == 0.9 and b.train.steps == 20 and "lr" in b.parameters
    assert len(probes) == 1


def test_an_invalid_space_is_an_error_every_time(probes):
    bad = TEXT.replace("low: 0.01", "low: 0.9")
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"bad\.yaml: parameters\.lr\.low: must be <= high"):
            sp.space_from_text(bad, "bad.yaml")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        sp.space_from_text("name: [", "bad.yaml")
