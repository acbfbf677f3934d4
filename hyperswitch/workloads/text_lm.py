"""A GPT-style language model on a local text corpus: the standard library's sources and docs, or your own.

Text: with ``data_path`` null (the default), the files under the standard library's folder
(``os.path.dirname(os.__file__)``; never ``site-packages``, ``dist-packages`` or ``__pycache__``); else the file
or folder that ``data_path`` names (``~`` expanded; a relative path is taken from the working directory). A
folder is read recursively: in each folder its ``.txt``, ``.py``, ``.md`` and ``.rst`` files in name order, then
its sub-folders in name order; a single file is read whatever its name ends with. Each file is read as UTF-8
(undecodable bytes become U+FFFD) and the texts are concatenated until ``max_bytes`` bytes of UTF-8 (the last
file is cut there; files after it are never opened). ``corpus_files`` lists the files read.

Tokens: ``tokens: byte`` (default) -- the UTF-8 bytes, vocabulary 256, the same for every corpus; ``tokens:
char`` -- the corpus's characters, vocabulary the distinct characters of the text read, in code-point order
(``vocabulary`` returns it).

Examples, split and model as ``char_lm`` (whose model this reuses, with the vocabulary's size): the tokens cut
into consecutive windows of ``context + 1``; a ``val_fraction`` of the windows, chosen by ``split_seed``, held
out; ``dataset_fraction`` keeps a seeded subset of the training windows (004's data-size axis); pre-norm blocks
of causal self-attention (``heads``) and a 4x GELU MLP of ``width``, ``layers`` of them; loss: cross-entropy
over every position; ``val_accuracy``: next-token accuracy over every validation position.

A ``data_path`` that does not exist, a folder without text files, or text too short for 10 windows is a
one-line ``ConfigError`` naming the path and what was expected.

Defaults: layers 2, width 64, heads 4, context 64, batch_size 32, byte tokens, max_bytes 1,000,000 (with
Python 3.11 that is the first 41 top-level sources, to ``configparser.py``; raise max_bytes to reach the
sub-folders' sources and text files): about 30 ms a step on one thread of 2 busy CPU cores (under a minute per
1,000 steps); width 128 or context 128 about 60 ms.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperswitch.config.validate import choice, number
from hyperswitch.errors import ConfigError
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of, make_batches, split_indices
from hyperswitch.workloads.char_lm import STDLIB_DIR, CharGPT, check_gpt_shape, sequence_cross_entropy

TEXT_SUFFIXES = (".txt", ".py", ".md", ".rst")
SKIPPED_FOLDERS = ("site-packages", "dist-packages", "__pycache__")
EXPECTED = "a text file, or a folder holding .txt, .py, .md or .rst files"


def _resolve(data_path: str | None) -> Path:
    return STDLIB_DIR if data_path is None else Path(os.path.expanduser(data_path))


def _walk(folder: Path) -> Iterator[Path]:
    """A folder's text files, lazily: its own in name order, then each sub-folder's (in name order)."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return
    for p in entries:
        if p.suffix in TEXT_SUFFIXES and p.is_file():
            yield p
    for p in entries:
        if p.is_dir() and not p.is_symlink() and p.name not in SKIPPED_FOLDERS and not p.name.startswith("."):
            yield from _walk(p)


def text_files(data_path: str | None, key: str = "workload.data_path") -> Iterator[Path]:
    """The files the corpus is read from, in order; ConfigError when there is nothing to read."""
    path = _resolve(data_path)
    if path.is_file():
        return iter([path])
    if not path.exists():
        raise ConfigError(key, f"no such file or folder: {path}; expected {EXPECTED}", data_path)
    if not path.is_dir():
        raise ConfigError(key, f"{path} is neither a file nor a folder; expected {EXPECTED}", data_path)
    files = _walk(path)
    first = next(files, None)
    if first is None:
        raise ConfigError(key, f"the folder {path} holds no .txt, .py, .md or .rst files (searched "
                          f"recursively); expected {EXPECTED}", data_path)
    return _chain(first, files)


def _chain(first: Path, rest: Iterator[Path]) -> Iterator[Path]:
    yield first
    yield from rest


@lru_cache(maxsize=4)
def _corpus(data_path: str | None, max_bytes: int) -> tuple[bytes, tuple[str, ...]]:
    parts: list[bytes] = []
    used: list[str] = []
    total = 0
    for path in text_files(data_path):
        if total >= max_bytes:
            break
        try:
            data = path.read_bytes().decode("utf-8", errors="replace").encode("utf-8")
        except OSError as exc:
            raise ConfigError("workload.data_path", f"cannot read {path}: {exc.strerror or exc}; expected "
                              f"{EXPECTED}", data_path) from exc
        parts.append(data)
        used.append(str(path))
        total += len(data)
    return b"".join(parts)[:max_bytes], tuple(used)


def corpus_bytes(data_path: str | None = None, max_bytes: int = 1_000_000) -> bytes:
    """The first ``max_bytes`` bytes of the corpus's UTF-8 text."""
    return _corpus(data_path, int(max_bytes))[0]


def corpus_files(data_path: str | None = None, max_bytes: int = 1_000_000) -> list[str]:
    """The files that ``corpus_bytes(data_path, max_bytes)`` read, in order."""
    return list(_corpus(data_path, int(max_bytes))[1])


@lru_cache(maxsize=4)
def _tokens(data_path: str | None, max_bytes: int, kind: str) -> tuple[np.ndarray, str | None]:
    data = corpus_bytes(data_path, max_bytes)
    if kind == "byte":
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64), None
    text = data.decode("utf-8", errors="ignore")  # only a character cut at max_bytes can be incomplete
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    alphabet, codes = np.unique(points, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), "".join(map(chr, alphabet.tolist()))


def tokens(data_path: str | None = None, max_bytes: int = 1_000_000, kind: str = "byte") -> np.ndarray:
    """The corpus as token codes (int64): its bytes, or each character's index in ``vocabulary``."""
    return _tokens(data_path, int(max_bytes), kind)[0]


def vocabulary(data_path: str | None = None, max_bytes: int = 1_000_000, kind: str = "byte") -> str | None:
    """The characters that ``tokens: char`` codes stand for, in code order (None for bytes: code = byte)."""
    return _tokens(data_path, int(max_bytes), kind)[1]


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    choice(spec["tokens"], ("byte", "char"), f"{key}.tokens")
    number(spec["max_bytes"], f"{key}.max_bytes", integer=True, low=1000)
    check_gpt_shape(spec, key, max_context=4096, max_layers=48)
    if spec["max_bytes"] // (spec["context"] + 1) < 10:
        raise ConfigError(f"{key}.max_bytes", "must hold at least 10 windows of context + 1 = "
                          f"{spec['context'] + 1} tokens", spec["max_bytes"])
    data_path = spec["data_path"]
    if data_path is not None and (not isinstance(data_path, str) or not data_path):
        raise ConfigError(f"{key}.data_path", f"must be null (the standard library's text) or the path of "
                          f"{EXPECTED}", data_path)
    text_files(data_path, f"{key}.data_path")  # exists and holds text files (lazy: nothing more is listed)


DEFAULTS = {"data_path": None, "tokens": "byte", "max_bytes": 1_000_000, "context": 64, "width": 64, "layers": 2,
            "heads": 4, "batch_size": 32, "val_fraction": 0.1, "dataset_fraction": 1.0, "split_seed": 0}


@register_workload("text_lm", defaults=DEFAULTS, check=_check)
def text_lm(seed: int, *, rank: int = 0, world_size: int = 1, data_path: str | None, tokens: str, max_bytes: int,
            context: int, width: int, layers: int, heads: int, batch_size: int, val_fraction: float,
            dataset_fraction: float, split_seed: int) -> Workload:
    """GPT-style model on local text (default: the standard library's sources and docs); byte or char tokens."""
    kind = tokens
    codes_np, alphabet = _tokens(data_path, int(max_bytes), kind)
    vocab = 256 if alphabet is None else len(alphabet)
    span = int(context) + 1
    if len(codes_np) // span < 10:
        raise ConfigError("workload.data_path", f"the text of {_resolve(data_path)} has {len(codes_np)} tokens; "
                          f"expected at least 10 windows of context + 1 = {span}", data_path)
    codes = torch.from_numpy(codes_np)
    windows = codes[: (len(codes) // span) * span].view(-1, span)
    tr, val = split_indices(len(windows), float(val_fraction), int(split_seed))
    tr = tr[fraction_of(len(tr), float(dataset_fraction), int(split_seed))]
    train, valid = windows[torch.from_numpy(tr)], windows[torch.from_numpy(val)]
    torch.manual_seed(seed)
    return Workload(
        name="text_lm",
        model=CharGPT(int(context), int(width), int(layers), int(heads), vocab=vocab),
        loss_fn=sequence_cross_entropy,
        train=make_batches(train[:, :-1].contiguous(), train[:, 1:].contiguous(), batch_size, seed, rank=rank,
                           world_size=world_size),
        val_x=valid[:, :-1].contiguous(),
        val_y=valid[:, 1:].contiguous(),
    )
