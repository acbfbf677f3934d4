"""The alpha check of issue 16 (docs/studies/iomt.md): which candidate IOMT's cycle score favours at alpha 0, 0.5
and 1, computed by ``cycle_score`` from real per-step mini-batch losses.

Setting: digits_mlp (64-128-10), batch 8 (noisy) or 64; two start states: ``init`` (the seed's fresh model) and
``trained`` (after 300 (batch 8) or 150 (batch 64) steps of Adam lr 1e-3, the state of a model some epochs into
training). From one state, each candidate takes the same 25 batches (one IOMT cycle, tau 25) from its own copy of
the model; ``l0`` is the last loss before the cycle (``init``: the cycle's own first loss, as IOMT does). The
candidate that "plainly wins" is the one with the lowest full training-set loss after its cycle (deterministic,
no mini-batch noise). One torch thread, deterministic seeds.

``python -m tests.switching.test_iomt_alpha [SEEDS]`` prints the table docs/studies/iomt.md quotes.
"""

from __future__ import annotations

import copy
import itertools
import sys
from dataclasses import dataclass

import torch

from hyperswitch.optim.registry import build_optimizer
from hyperswitch.switching._base import optimizer_step
from hyperswitch.switching._iomt_score import cycle_score
from hyperswitch.workloads import build_workload

CANDIDATES = ({"name": "sgd", "lr": 0.001}, {"name": "adagrad", "lr": 0.001}, {"name": "sgdm", "lr": 0.01},
              {"name": "adam", "lr": 0.001}, {"name": "adam", "lr": 0.01})
LABELS = [f"{c['name']}({c['lr']})" for c in CANDIDATES]
ALPHAS = (0.0, 0.5, 1.0)
TAU = 25


@dataclass
class Cell:
    batch: int
    state: str
    seed: int
    before: float  # full training loss at the cycle's start
    after: list[float]  # per candidate, after its cycle
    scores: list[list[float]]  # per candidate, per alpha

    @property
    def winner(self) -> int:
        return min(range(len(self.after)), key=self.after.__getitem__)

    def favoured(self, a: int) -> int:
        return max(range(len(self.scores)), key=lambda j: self.scores[j][a])


def check(batch: int, state: str, seed: int) -> Cell:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        wl = build_workload({"name": "digits_mlp", "batch_size": batch}, seed)
        data = list(wl.train)
        xs, ys = torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])

        def full_loss(m: torch.nn.Module) -> float:
            with torch.no_grad():
                return float(wl.loss_fn(m(xs), ys))

        it = itertools.cycle(data)
        model, l0 = wl.model, None
        if state == "trained":
            opt = build_optimizer({"name": "adam", "lr": 0.001}, model, wl.loss_fn)
            for _ in range(300 if batch == 8 else 150):
                l0 = float(optimizer_step(opt, model, wl.loss_fn, *next(it)))
        batches = [next(it) for _ in range(TAU)]
        after, scores = [], []
        for c in CANDIDATES:
            m = copy.deepcopy(model)
            opt = build_optimizer(c, m, wl.loss_fn)
            losses = [float(optimizer_step(opt, m, wl.loss_fn, x, y)) for x, y in batches]
            after.append(full_loss(m))
            scores.append([cycle_score(l0 if l0 is not None else losses[0], losses, a) for a in ALPHAS])
        return Cell(batch, state, seed, full_loss(model), after, scores)
    finally:
        torch.set_num_threads(threads)


def test_alpha_decides_which_candidate_the_score_favours():
    # from a fresh model, adam(0.01) plainly wins (full loss 2.3 -> ~0.1-0.5) and every alpha favours it
    for batch in (8, 64):
        cell = check(batch, "init", 0)
        assert LABELS[cell.winner] == "adam(0.01)" and cell.after[cell.winner] < 0.6 < 2.0 < cell.before
        assert [cell.favoured(a) for a in range(3)] == [cell.winner] * 3
    # some epochs in, at batch 8: adam(0.01) makes the full loss worse, adam(0.001) plainly wins; alpha 0.5 and 1
    # favour adam(0.01) (its noisier losses: the alpha·sigma term), alpha 0 does not
    cell = check(8, "trained", 0)
    worst = LABELS.index("adam(0.01)")
    assert LABELS[cell.winner] == "adam(0.001)" and cell.after[worst] > cell.before > cell.after[cell.winner]
    assert cell.favoured(1) == cell.favoured(2) == worst != cell.favoured(0)
    # the alpha·sigma term is most of the score there: at alpha 0.5 every candidate's score is > 10x its alpha-0
    # score in size
    assert all(abs(s[1]) > 10 * abs(s[0]) for s in cell.scores)


def table(seeds: list[int]) -> str:
    lines = ["| batch | state | seed | full loss before | full loss after each candidate (" + ", ".join(LABELS)
             + ") | plainly wins | favoured at α 0 / 0.5 / 1 | scores at α 0 / 0.5 / 1 of winner; of favoured at 0.5 |",
             "|---|---|---|---|---|---|---|---|"]
    for batch, state, seed in itertools.product((8, 64), ("init", "trained"), seeds):
        c = check(batch, state, seed)
        fav = [LABELS[c.favoured(a)] for a in range(3)]
        w, f = c.scores[c.winner], c.scores[c.favoured(1)]
        lines.append(f"| {batch} | {state} | {seed} | {c.before:.3f} | " + ", ".join(f"{a:.3f}" for a in c.after)
                     + f" | {LABELS[c.winner]} | {' / '.join(fav)} | "
                     + " / ".join(f"{s:.4f}" for s in w) + "; " + " / ".join(f"{s:.4f}" for s in f) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "0,1,2,3,4").split(",")]))
