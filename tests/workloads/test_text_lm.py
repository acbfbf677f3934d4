"""text_lm: the corpus is the folder or file named by data_path (text files only, recursively, in a fixed order;
UTF-8 with errors replaced; cut at max_bytes) or by default the standard library's text; byte and character
tokens; a missing or malformed data_path is a one-line error naming the path; a few steps train and evaluate,
the same seed repeats; 2 data-parallel workers (a worker group on Ray) equal 1 process."""

from __future__ import annotations

import math
import os

import pytest
import torch

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.train import driver
from hyperswitch.train.loop import train_run
from hyperswitch.workloads import build_workload, validate_workload
from hyperswitch.workloads import text_lm as tl

TINY = {"name": "text_lm", "context": 16, "width": 16, "layers": 1, "heads": 2, "batch_size": 8}
ADAM = {"type": "single", "optimizer": {"name": "adam", "lr": 3e-3}}


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as in a sweep's trials: a tiny model on 2 shared cores runs faster without thread spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def corpus_dir(tmp_path):
    root = tmp_path / "corpus"
    (root / "b_sub" / "deeper").mkdir(parents=True)
    (root / "a_sub").mkdir()
    (root / "z.txt").write_text("zeta text, " * 40, encoding="utf-8")
    (root / "m.md").write_text("# Heading\nsome *markdown* ü\n" * 20, encoding="utf-8")
    (root / "ignored.bin").write_bytes(b"\x00\x01 not text" * 50)
    (root / "notes.csv").write_text("not,read\n" * 50)
    (root / "a_sub" / "code.py").write_text("def f(x):\n    return x + 1\n" * 20, encoding="utf-8")
    (root / "b_sub" / "deeper" / "doc.rst").write_bytes(b"bad byte \xff here\n" * 20)  # invalid UTF-8
    (root / "b_sub" / "readme.txt").write_text("readme " * 60, encoding="utf-8")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.txt").write_text("skipped")
    return root


def test_folder_order_and_text(corpus_dir):
    files = tl.corpus_files(str(corpus_dir), 100_000)
    rel = [os.path.relpath(f, corpus_dir) for f in files]
    assert rel == ["m.md", "z.txt", "a_sub/code.py", "b_sub/readme.txt", "b_sub/deeper/doc.rst"]
    expect = b"".join((corpus_dir / r).read_bytes().decode("utf-8", errors="replace").encode("utf-8") for r in rel)
    assert tl.corpus_bytes(str(corpus_dir), 100_000) == expect and "\ufffd".encode() in expect
    # max_bytes cuts the text; files after the cut are not read.
    assert tl.corpus_bytes(str(corpus_dir), 1500) == expect[:1500]
    assert len(tl.corpus_files(str(corpus_dir), 1500)) < len(files)


def test_byte_and_char_tokens(corpus_dir):
    data = tl.corpus_bytes(str(corpus_dir), 100_000)
    assert tl.tokens(str(corpus_dir), 100_000, "byte").tolist() == list(data)
    assert tl.vocabulary(str(corpus_dir), 100_000, "byte") is None
    text = data.decode("utf-8")
    vocab = tl.vocabulary(str(corpus_dir), 100_000, "char")
    assert vocab == "".join(sorted(set(text)))
    codes = tl.tokens(str(corpus_dir), 100_000, "char")
    assert "".join(vocab[c] for c in codes.tolist()) == text
    wl_b = build_workload({**TINY, "data_path": str(corpus_dir)}, seed=0)
    wl_c = build_workload({**TINY, "data_path": str(corpus_dir), "tokens": "char"}, seed=0)
    assert wl_b.model.head.out_features == 256 and wl_c.model.head.out_features == len(vocab)
    assert torch.equal(wl_b.train.x[:, 1:], wl_b.train.y[:, :-1]) and wl_b.train.x.shape[1] == 16
    n = len(data) // 17
    assert len(wl_b.train.x) + len(wl_b.val_x) == n and len(wl_b.val_x) == round(0.1 * n)


def test_single_file_and_dataset_fraction(tmp_path):
    f = tmp_path / "book.dat"  # a named file is read whatever its suffix
    f.write_text("It was the best of times, it was the worst of times. " * 100, encoding="utf-8")
    wl = build_workload({**TINY, "data_path": str(f)}, seed=0)
    assert tl.corpus_files(str(f), 1_000_000) == [str(f)]
    assert len(wl.train.x) + len(wl.val_x) == len(f.read_bytes()) // 17
    half = build_workload({**TINY, "data_path": str(f), "dataset_fraction": 0.5}, seed=0)
    assert len(half.train.x) == round(0.5 * len(wl.train.x)) and torch.equal(half.val_x, wl.val_x)


def test_default_corpus_is_the_standard_library():
    files = tl.corpus_files(None, 30_000)
    assert files and all(os.path.dirname(f).startswith(str(tl.STDLIB_DIR)) for f in files)
    assert not any("site-packages" in f for f in files)
    assert len(tl.corpus_bytes(None, 30_000)) == 30_000


def test_trains_evaluates_and_the_same_seed_repeats(corpus_dir):
    spec = {**TINY, "data_path": str(corpus_dir)}
    before = build_workload(spec, seed=0).evaluate()
    policy = Policy.from_spec(ADAM)
    a, b, c = (train_run(spec, policy, {"steps": 12, "eval_every": 12}, seed=s) for s in (0, 0, 1))
    assert a.status == "completed" and a.summary["steps_done"] == 12
    assert [r["loss"] for r in a.steps] == [r["loss"] for r in b.steps]
    assert a.summary["val_loss"] == b.summary["val_loss"] and a.summary["val_accuracy"] == b.summary["val_accuracy"]
    assert [r["loss"] for r in a.steps] != [r["loss"] for r in c.steps]
    assert a.summary["val_loss"] < before["val_loss"] and 0.0 <= a.summary["val_accuracy"] <= 1.0


def _error(spec):
    with pytest.raises(ConfigError) as err:
        validate_workload(spec)
        build_workload(spec, seed=0)
    assert "\n" not in str(err.value)
    return err.value


def test_bad_data_path_is_a_one_line_error_naming_the_path(tmp_path):
    missing = tmp_path / "nope"
    err = _error({**TINY, "data_path": str(missing)})
    assert err.key == "workload.data_path" and str(missing) in str(err) and "no such file or folder" in err.rule
    assert "expected a text file, or a folder holding .txt, .py, .md or .rst files" in err.rule
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _error({**TINY, "data_path": str(empty)})
    assert err.key == "workload.data_path" and str(empty) in err.rule and "holds no .txt, .py, .md or .rst" in err.rule
    binary = tmp_path / "binary"
    (binary / "sub").mkdir(parents=True)
    (binary / "sub" / "data.bin").write_bytes(b"\x00" * 100)
    err = _error({**TINY, "data_path": str(binary)})
    assert str(binary) in err.rule and "holds no" in err.rule
    short = tmp_path / "short.txt"
    short.write_text("too short")
    err = _error({**TINY, "data_path": str(short)})
    assert err.key == "workload.data_path" and str(short) in err.rule and "at least 10 windows" in err.rule
    err = _error({**TINY, "data_path": ""})
    assert err.key == "workload.data_path"


@pytest.mark.parametrize(("change", "key", "rule"), [
    ({"tokens": "word"}, "workload.tokens", "must be one of byte, char"),
    ({"heads": 3}, "workload.heads", "must divide width (16)"),
    ({"max_bytes": 10}, "workload.max_bytes", "must be >= 1000"),
    ({"max_bytes": 1000, "context": 200}, "workload.max_bytes", "at least 10 windows"),
    ({"context": 1}, "workload.context", "must be >= 2"),
    ({"layers": -1}, "workload.layers", "must be >= 0"),
    ({"dataset_fraction": 1.5}, "workload.dataset_fraction", "must be <= 1.0"),
])
def test_bad_options(change, key, rule):
    err = _error({**TINY, **change})
    assert err.key == key and rule in err.rule
    assert err.value == change[key.split(".")[1]]


@pytest.mark.slow
def test_two_workers_match_one_process(local_ray, tmp_path, corpus_dir):
    wl = {**TINY, "data_path": str(corpus_dir), "max_bytes": 4000}
    job = driver.CliJob(wl, ADAM, {"steps": 6, "eval_every": 6, "checkpoint_every": 0}, seed=0)
    one = job.run(rank=0, world_size=1, device=torch.device("cpu"), resume=None, report=lambda m, s: None)
    two = driver.run_data_parallel(job, workers=2, use_gpu=False, cpus_per_worker=0.49, gpus_per_worker=0,
                                   max_failures=0, in_tune=False)
    assert two["status"] == one["status"] == "completed"
    assert two["summary"]["workers"] == 2 and one["summary"]["workers"] == 1
    l1, l2 = [r["loss"] for r in one["steps"]], [r["loss"] for r in two["steps"]]
    assert len(l1) == len(l2) == 6
    for a, b in zip(l1, l2, strict=True):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), (a, b)
    assert math.isclose(two["summary"]["val_loss"], one["summary"]["val_loss"], rel_tol=1e-4)
