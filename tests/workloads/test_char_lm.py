"""char_lm: the text is the standard library's own sources (and nothing else is opened), windows and split,
causality of the model, next-character accuracy counted over every position, option checks."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from hyperswitch.errors import ConfigError
from hyperswitch.workloads import build_workload, validate_workload
from hyperswitch.workloads import char_lm as cl

SMALL = {"name": "char_lm", "chars": 6000, "context": 16, "width": 16, "layers": 1, "heads": 2, "batch_size": 16}

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while _opened is a list


def test_reads_only_standard_library_sources_and_the_text_is_theirs():
    global _opened
    chars = 30_000
    cl._corpus.cache_clear()
    _opened = []
    try:
        codes = cl.corpus(chars)
        files = cl.corpus_files(chars)
    finally:
        opened, _opened = _opened, None
    stdlib = os.path.dirname(os.__file__)
    assert opened and sorted(set(opened)) == sorted(files)
    for path in opened:
        assert os.path.dirname(path) == stdlib and path.endswith(".py") and "site-packages" not in path
    # Independently: the first files of the sorted listing of the stdlib folder, concatenated.
    names = sorted(n for n in os.listdir(stdlib) if n.endswith(".py") and os.path.isfile(os.path.join(stdlib, n)))
    text = ""
    for n in names:
        if len(text) >= chars:
            break
        with open(os.path.join(stdlib, n), encoding="utf-8", errors="replace") as fh:
            text += fh.read()
    expect = [ord(c) if ord(c) < 128 else ord("?") for c in text[:chars]]
    assert codes.tolist() == expect and len(codes) == chars


def test_windows_split_and_fraction():
    wl = build_workload(SMALL, seed=0)
    codes = cl.corpus(6000).tolist()
    span = 17
    starts = range(0, len(codes) - span + 1, span)
    n = len(starts)
    windows = {tuple(codes[i:i + span]) for i in starts}
    for x, y in ((wl.train.x, wl.train.y), (wl.val_x, wl.val_y)):
        assert x.shape[1] == y.shape[1] == 16 and x.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])  # the target is the input shifted by one character
        for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
            assert tuple(row_x + row_y[-1:]) in windows
    assert len(wl.train.x) + len(wl.val_x) == 6000 // span == n
    assert len(wl.val_x) == round(0.1 * n)
    half = build_workload({**SMALL, "dataset_fraction": 0.5}, seed=0)
    assert len(half.train.x) == round(0.5 * len(wl.train.x)) and torch.equal(half.val_x, wl.val_x)
    train_rows = {tuple(r) for r in wl.train.x.tolist()}
    assert all(tuple(r) in train_rows for r in half.train.x.tolist())


def test_model_is_causal_and_accuracy_counts_every_position():
    wl = build_workload({**SMALL, "layers": 2}, seed=1)
    x = wl.val_x[:4].clone()
    base = wl.model(x)
    x[:, 10] = (x[:, 10] + 1) % 128
    changed = wl.model(x)
    assert torch.allclose(base[:, :10], changed[:, :10], atol=1e-6)
    assert not torch.allclose(base[:, 10:], changed[:, 10:])
    with torch.no_grad():
        logits = wl.model(wl.val_x)
        acc = (logits.argmax(-1) == wl.val_y).double().mean().item()
        loss = torch.nn.functional.cross_entropy(logits.permute(0, 2, 1), wl.val_y).item()
    m = wl.evaluate(batch_size=7)  # batches that do not divide the set
    assert m["val_accuracy"] == pytest.approx(acc, abs=1e-12)
    assert m["val_loss"] == pytest.approx(loss, rel=1e-5)


@pytest.mark.parametrize(("change", "key", "rule"), [
    ({"heads": 3}, "workload.heads", "must divide width (16)"),
    ({"chars": 100}, "workload.chars", "must be >= 1000"),
    ({"chars": 1000, "context": 200}, "workload.chars", "at least 10 windows"),
    ({"context": 1}, "workload.context", "must be >= 2"),
    ({"layers": -1}, "workload.layers", "must be >= 0"),
    ({"dataset_fraction": 1.5}, "workload.dataset_fraction", "must be <= 1.0"),
])
def test_bad_options(change, key, rule):
    with pytest.raises(ConfigError) as err:
        validate_workload({**SMALL, **change})
    assert err.value.key == key and rule in err.value.rule
    assert err.value.value == change[key.split(".")[1]]
