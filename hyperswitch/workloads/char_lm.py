"""A small GPT-style character model on the Python standard library's own source text (nothing downloaded).

Text: the ``*.py`` files directly in the standard library's folder (``os.path.dirname(os.__file__)``, no
sub-folders, so never ``site-packages``), in sorted file-name order, read as UTF-8 and concatenated until
``chars`` characters; each character is its ASCII code (anything else becomes ``?``), so the vocabulary is the
128 ASCII codes. The text, hence the data set, is the same on every run of one Python version; another Python
version ships other files (``corpus_files`` lists those read).

Examples: the text cut into consecutive windows of ``context + 1`` characters (input: the first ``context``,
target: the same shifted by one). A ``val_fraction`` of the windows, chosen by ``split_seed``, is held out;
``dataset_fraction`` keeps a seeded subset of the training windows (004's data-set-size study).

Model (nanoGPT's shape, pre-norm): token + learned position embeddings of ``width``, ``layers`` blocks of
causal multi-head self-attention (``heads`` heads, ``F.scaled_dot_product_attention``) and a 4x GELU MLP,
a final LayerNorm and a linear head to 128 logits per position. All weights are ``nn.Linear``/``nn.Embedding``/
``nn.LayerNorm``: K-FAC preconditions the Linear layers (rows = every position of every sequence).
Loss: cross-entropy averaged over every position; ``val_accuracy``: next-character accuracy over every
validation position.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hyperswitch.config.validate import number
from hyperswitch.errors import ConfigError
from hyperswitch.workloads._base import Workload, register_workload
from hyperswitch.workloads._common import check_common, fraction_of, make_batches, split_indices

VOCAB = 128
STDLIB_DIR = Path(os.path.dirname(os.__file__))


def stdlib_sources() -> list[Path]:
    """Every ``*.py`` file directly in the standard library's folder, sorted by name."""
    return sorted(p for p in STDLIB_DIR.glob("*.py") if p.is_file())


@lru_cache(maxsize=4)
def _corpus(chars: int) -> tuple[np.ndarray, tuple[str, ...]]:
    parts: list[str] = []
    used: list[str] = []
    total = 0
    for path in stdlib_sources():
        if total >= chars:
            break
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        used.append(str(path))
        total += len(text)
    text = "".join(parts)[:chars]
    codes = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8).astype(np.int64)
    return codes, tuple(used)


def corpus(chars: int) -> np.ndarray:
    """The first ``chars`` characters of the standard library's sources as ASCII codes (int64)."""
    return _corpus(int(chars))[0]


def corpus_files(chars: int) -> list[str]:
    """The files that ``corpus(chars)`` read, in order."""
    return list(_corpus(int(chars))[1])


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(n, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharGPT(nn.Module):
    """``(N, T)`` token codes -> ``(N, T, vocab)`` next-token logits (``vocab`` 128: char_lm's ASCII codes)."""

    def __init__(self, context: int, width: int, layers: int, heads: int, vocab: int = VOCAB) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.tok(idx) + self.pos(positions)
        return self.head(self.ln_f(self.blocks(x)))


def sequence_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every position of every sequence."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


sequence_cross_entropy.class_dim = -1  # type: ignore[attr-defined]  # logits (N, T, V): for a sampled Fisher


def check_gpt_shape(spec: dict[str, Any], key: str, *, max_context: int, max_layers: int) -> None:
    """The model's options (context, width, layers, heads; heads divide width), shared with ``text_lm``."""
    number(spec["context"], f"{key}.context", integer=True, low=2, high=max_context)
    number(spec["width"], f"{key}.width", integer=True, low=1)
    number(spec["layers"], f"{key}.layers", integer=True, low=0, high=max_layers)
    number(spec["heads"], f"{key}.heads", integer=True, low=1)
    if spec["width"] % spec["heads"]:
        raise ConfigError(f"{key}.heads", f"must divide width ({spec['width']})", spec["heads"])


def _check(spec: dict[str, Any], key: str) -> None:
    check_common(spec, key)
    number(spec["chars"], f"{key}.chars", integer=True, low=1000)
    check_gpt_shape(spec, key, max_context=1024, max_layers=12)
    if spec["chars"] // (spec["context"] + 1) < 10:
        raise ConfigError(f"{key}.chars", f"must hold at least 10 windows of context + 1 = {spec['context'] + 1} "
                          "characters", spec["chars"])


@register_workload(
    "char_lm",
    defaults={"chars": 200_000, "context": 64, "width": 64, "layers": 2, "heads": 4, "batch_size": 32,
              "val_fraction": 0.1, "dataset_fraction": 1.0, "split_seed": 0},
    check=_check,
)
def char_lm(seed: int, *, rank: int = 0, world_size: int = 1, chars: int, context: int, width: int, layers: int,
            heads: int, batch_size: int, val_fraction: float, dataset_fraction: float, split_seed: int) -> Workload:
    """GPT-style character model on the standard library's source text; next-character accuracy."""
    codes = torch.from_numpy(corpus(int(chars)))
    span = int(context) + 1
    windows = codes[: (len(codes) // span) * span].view(-1, span)
    tr, val = split_indices(len(windows), float(val_fraction), int(split_seed))
    tr = tr[fraction_of(len(tr), float(dataset_fraction), int(split_seed))]
    train, valid = windows[torch.from_numpy(tr)], windows[torch.from_numpy(val)]
    torch.manual_seed(seed)
    return Workload(
        name="char_lm",
        model=CharGPT(int(context), int(width), int(layers), int(heads)),
        loss_fn=sequence_cross_entropy,
        train=make_batches(train[:, :-1].contiguous(), train[:, 1:].contiguous(), batch_size, seed, rank=rank,
                           world_size=world_size),
        val_x=valid[:, :-1].contiguous(),
        val_y=valid[:, 1:].contiguous(),
    )
