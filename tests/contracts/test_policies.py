"""The contract every policy type keeps, with every registered optimizer (a ``single`` policy of each, and a
``switch`` policy into each, built mid-run), parametrized from the registries so that a new optimizer is covered
without an edit here and a new policy type fails until it has cases in ``TYPE_CASES``:

(a) ``state_dict`` round trip mid-run: K updates, the stepper's and the model's state through ``torch.save`` /
    ``torch.load(weights_only=True)`` (as train.driver checkpoints), then M more; a fresh model and stepper loaded
    from that state take the same M updates bit for bit (losses, learning rates, optimizer names, events, and
    parameters ``torch.equal``);
(b) ``copy.deepcopy(stepper)`` after K updates continues like an uninterrupted run, and so does the original
    (no tensor shared between them);
(c) memory release: once the model and the stepper are dropped, every tensor that was reachable from them
    (parameters, gradients, optimizer state, preconditioner factors, ...) is freed;
(d) events well-formed: each ``StepReport`` and ``Event`` has the documented fields and types (``_base.py``), an
    event's ``detail`` is plain JSON with the keys its kind documents (switch.py, single.py, iomt.py), and
    ``switch_report()`` is JSON with ``fired`` and ``rule``.

The training loop calls ``end_epoch`` after every epoch; here an epoch is 3 updates (``toy.BATCHES_PER_EPOCH``).
Before its K updates and again before its M updates a run seeds torch's global generator (1, then 2): optimizers
that sample from it (``sf`` without ``sample_seed``) draw the same numbers in the runs compared.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import weakref
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from hyperswitch.optim import optimizer_names
from hyperswitch.switching import Event, Policy, StepReport, policy_type_names
from tests.contracts.toy import BATCHES_PER_EPOCH, checkpoint, reachable_tensors, toy_batches, toy_model

K, M = 4, 6  # save after update 4 (mid-epoch; mid-fusion and mid-cycle in the cases below), then 6 more

# Defaults tuned for real workloads can be too bold for this toy (it is about mechanics, not tuning).
LR_OVERRIDES: dict[str, dict[str, Any]] = {"dadapt_adam": {"lr": 0.1}, "prodigy": {"lr": 0.1}}


def opt_spec(name: str) -> dict[str, Any]:
    return {"name": name, **LR_OVERRIDES.get(name, {})}


# Hand-written cases per policy type; the registry-driven ones are added below. Switches land inside the M
# updates after the checkpoint (or, with a corrector, the checkpoint falls in the fusion period).
TYPE_CASES: dict[str, dict[str, dict[str, Any]]] = {
    "single": {
        "sgdm-gen-rule": {"optimizer": {"name": "sgdm", "lr": 0.05}, "lr_rule": {"name": "gen", "phi": 2}},
        "swats": {"optimizer": {"name": "swats", "lr": 0.1, "eps": 0.1}},  # enters its SGD phase at update 9
    },
    "switch": {
        "at-step-6": {"phase1": {"name": "adam", "lr": 0.01}, "phase2": {"name": "sgdm", "lr": 0.05},
                      "switch": {"at": 6}},
        "at-epoch-2": {"phase1": {"name": "adam", "lr": 0.01}, "phase2": {"name": "sgd", "lr": 0.05},
                       "switch": {"at": 2, "unit": "epoch"}},
        "adaptive-step": {"phase1": {"name": "sgd", "lr": 0.05}, "phase2": {"name": "adam", "lr": 0.01},
                          "switch": {"theta": 0.035, "K": 2}},  # fires after update 8
        "adaptive-epoch": {"phase1": {"name": "sgd", "lr": 0.05}, "phase2": {"name": "adam", "lr": 0.01},
                           "switch": {"theta": 0.5, "K": 1, "unit": "epoch"}},
        "never": {"phase1": {"name": "rmsprop", "lr": 0.01}, "phase2": {"name": "sgd"}, "switch": "never"},
        "kfac-corrector": {"phase1": {"name": "kfac", "lr": 0.05, "inverse_interval": 2},
                           "phase2": {"name": "sgdm", "lr": 0.05}, "switch": {"at": 2}, "corrector": {"T1": 4}},
        "shampoo-corrector": {"phase1": {"name": "shampoo", "lr": 0.05, "inverse_interval": 2},
                              "phase2": {"name": "sgdm", "lr": 0.05}, "switch": {"at": 3}, "corrector": {"T1": 3}},
        "gen-rule": {"phase1": {"name": "sgd", "lr": 0.05}, "phase2": {"name": "adam", "lr": 0.01},
                     "switch": {"at": 5}, "lr_rule": {"name": "gen", "phi": 2}},
    },
    "mixer": {
        "defaults": {},
        "fusion": {"phase1": {"name": "kfac", "lr": 0.05, "inverse_interval": 1}, "switch": {"at": 2},
                   "corrector": {"T1": 4}},
        "foof-direct": {"phase1": {"name": "foof", "lr": 0.05}, "switch": {"theta": 0.1, "K": 3},
                        "corrector": {"T1": 0}},
    },
    "iomt": {
        "surrogate": {"candidates": [{"name": "sgd", "lr": 0.05}, {"name": "sgdm", "lr": 0.05},
                                     {"name": "adam", "lr": 0.01}], "tau": 3, "n_ini": 2, "n_halve": 2},
        "random-reset": {"candidates": [{"name": "sgdm", "lr": 0.05}, {"name": "kfac", "lr": 0.05}],
                         "tau": 3, "select": "random", "reset_state": True, "seed": 3},
        "cyclical": {"candidates": [{"name": "adagrad", "lr": 0.05}, {"name": "shampoo", "lr": 0.05}], "tau": 3,
                     "select": "cyclical", "layers": "all"},
    },
}


def all_cases() -> dict[str, dict[str, Any]]:
    cases = {f"{t}-{name}": {"type": t, **spec} for t, named in TYPE_CASES.items() for name, spec in named.items()}
    for name in optimizer_names():
        cases[f"single-{name}"] = {"type": "single", "optimizer": opt_spec(name)}
        cases[f"switch-adam-to-{name}"] = {"type": "switch", "phase1": {"name": "adam", "lr": 0.01},
                                           "phase2": opt_spec(name), "switch": {"at": 5}}
    return cases


CASES = all_cases()


@pytest.mark.parametrize("policy_type", policy_type_names())
def test_every_policy_type_has_contract_cases(policy_type):
    assert TYPE_CASES.get(policy_type), f"add cases for policy type {policy_type!r} to TYPE_CASES"


class Run:
    """A model, its stepper, and the training loop's protocol: ``end_epoch`` with the epoch's mean loss after
    every BATCHES_PER_EPOCH updates. ``trace`` records what each update and each epoch end reported."""

    def __init__(self, spec: dict[str, Any], model: torch.nn.Module | None = None, stepper: Any = None) -> None:
        self.model = model if model is not None else toy_model()
        self.stepper = stepper if stepper is not None else Policy.from_spec(spec).build(self.model, F.cross_entropy)
        self.batches = toy_batches()
        self.epoch_losses: list[float] = []
        self.trace: list[tuple] = []

    def advance(self, n: int, seed: int) -> None:
        torch.manual_seed(seed)
        for _ in range(n):
            step = self.stepper.step_count + 1
            x, y = self.batches[(step - 1) % BATCHES_PER_EPOCH]
            r = self.stepper.step(x, y)
            self.trace.append(("step", r.step, r.loss, r.lr, r.optimizer, r.switched, events_key(r.events)))
            self.epoch_losses.append(r.loss)
            if step % BATCHES_PER_EPOCH == 0:
                events = self.stepper.end_epoch(step // BATCHES_PER_EPOCH, sum(self.epoch_losses) / BATCHES_PER_EPOCH)
                self.trace.append(("epoch", step // BATCHES_PER_EPOCH, events_key(events)))
                self.epoch_losses = []


def events_key(events: list[Event]) -> list[tuple[int, str, str]]:
    return [(e.step, e.kind, e.detail_json()) for e in events]


def assert_same(a: Run, b: Run, case: str) -> None:
    assert a.trace == b.trace, case
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q), case
    assert a.stepper.switch_report() == b.stepper.switch_report(), case


@pytest.mark.parametrize("case", CASES)
def test_state_dict_round_trip_mid_run(case):
    spec = CASES[case]
    run = Run(spec)
    run.advance(K, seed=1)
    saved = checkpoint({"model": run.model.state_dict(), "stepper": run.stepper.state_dict()})
    losses_so_far = list(run.epoch_losses)
    run.advance(M, seed=2)

    fresh = Run(spec)
    fresh.model.load_state_dict(saved["model"])
    fresh.stepper.load_state_dict(saved["stepper"])
    fresh.epoch_losses = losses_so_far  # the loop's own part of a checkpoint
    fresh.advance(M, seed=2)
    fresh.trace = run.trace[:len(run.trace) - len(fresh.trace)] + fresh.trace
    assert_same(run, fresh, case)


@pytest.mark.parametrize("case", CASES)
def test_deepcopy_continues_identically(case):
    spec = CASES[case]
    reference = Run(spec)
    reference.advance(K, seed=1)
    reference.advance(M, seed=2)

    run = Run(spec)
    run.advance(K, seed=1)
    twin_stepper = copy.deepcopy(run.stepper)
    assert twin_stepper.model is not run.stepper.model
    twin = Run(spec, model=twin_stepper.model, stepper=twin_stepper)
    twin.epoch_losses, twin.trace = list(run.epoch_losses), list(run.trace)
    originals = {id(t) for t in reachable_tensors(run.stepper)}
    assert not [t for t in reachable_tensors(twin_stepper) if id(t) in originals], "the copy shares tensors"
    run.advance(M, seed=2)  # the original first: a shared buffer would show in the copy's run after it
    twin.advance(M, seed=2)
    assert_same(reference, run, case)
    assert_same(reference, twin, case)


def _trained_and_dropped(spec: dict[str, Any]) -> tuple[list[weakref.ref], int]:
    """Weak references to every tensor the run held after K updates (phase 1 or fusion state included) and after
    K + M (phase 2's), and how many; the run itself is dropped on return."""
    run = Run(spec)
    refs: dict[int, weakref.ref] = {}
    for n, seed in ((K, 1), (M, 2)):
        run.advance(n, seed=seed)
        run.stepper.state_dict()  # a checkpoint taken and thrown away holds nothing either
        refs.update((id(t), weakref.ref(t)) for t in reachable_tensors(run.stepper, run.model))
    return list(refs.values()), len(refs)


@pytest.mark.parametrize("case", CASES)
def test_memory_is_released_with_the_stepper(case):
    refs, n = _trained_and_dropped(CASES[case])
    gc.collect()
    alive = [r() for r in refs if r() is not None]
    assert n >= 4 and not alive, f"{len(alive)} of {n} tensors still alive: {[tuple(t.shape) for t in alive]}"


# The documented event kinds and their detail keys: name -> (required keys with types, optional keys with types).
OPT_FLOAT = (float, type(None))
EVENT_KINDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # switch.py: from, to, rule; score (adaptive rule), fusion_steps (corrector). single.py (SWATS): lr.
    "switch": ({"from": str, "to": str, "rule": str}, {"score": float, "fusion_steps": int, "lr": OPT_FLOAT}),
    "fusion_end": ({"from": str, "to": str}, {}),
    # iomt.py: cycle, candidate index, name, from (None in cycle 0), to, the previous cycle's score, select
    "iomt_cycle": ({"cycle": int, "candidate": int, "name": str, "from": (str, type(None)), "to": str,
                    "score": OPT_FLOAT, "select": str}, {}),
}
RULES = {"fixed", "adaptive", "swats"}
SELECTS = {"random", "surrogate", "cyclical"}


def check_event(e: Any, step: int) -> None:
    assert isinstance(e, Event), e
    assert type(e.step) is int and e.step == step, (e, step)
    assert e.kind in EVENT_KINDS, f"undocumented event kind {e.kind!r}: add it (and its keys) to EVENT_KINDS"
    assert isinstance(e.detail, dict) and all(isinstance(k, str) for k in e.detail), e
    assert json.loads(json.dumps(e.detail, allow_nan=False)) == e.detail, e  # plain JSON, no default=str
    assert json.loads(e.detail_json()) == e.detail, e
    required, optional = EVENT_KINDS[e.kind]
    assert set(required) <= set(e.detail) <= set(required) | set(optional), (e.kind, sorted(e.detail))
    for k, v in e.detail.items():
        kind = {**required, **optional}[k]
        assert isinstance(v, kind) and not isinstance(v, bool), (e.kind, k, v)
    if e.kind == "switch":
        assert e.detail["rule"] in RULES, e
    if e.kind == "iomt_cycle":
        assert e.detail["select"] in SELECTS and e.detail["name"] == e.detail["to"], e


@pytest.mark.parametrize("case", CASES)
def test_reports_and_events_are_well_formed(case):
    spec = CASES[case]
    run = Run(spec)
    stepper, batches = run.stepper, run.batches
    events: list[Event] = []
    for step in range(1, K + M + 1):
        r = stepper.step(*batches[(step - 1) % BATCHES_PER_EPOCH])
        assert isinstance(r, StepReport)
        assert type(r.step) is int and r.step == step == stepper.step_count
        assert type(r.loss) is float and math.isfinite(r.loss), r
        assert type(r.lr) is float and r.lr > 0, r
        assert isinstance(r.optimizer, str) and r.optimizer, r
        assert type(r.switched) is bool and isinstance(r.events, list), r
        for e in r.events:
            check_event(e, step)
        events += r.events
        if spec["type"] == "iomt":  # switched: the candidate changed at this cycle's start
            assert r.switched == any(e.detail["from"] not in (None, e.detail["to"]) for e in r.events), r
        else:
            assert r.switched == any(e.kind == "switch" for e in r.events), r
        if step % BATCHES_PER_EPOCH == 0:
            for e in stepper.end_epoch(step // BATCHES_PER_EPOCH, r.loss):
                check_event(e, step)
    report = stepper.switch_report()
    switches = [e.step for e in events if e.kind == "switch"]
    if report is None:
        assert not switches, "a policy with switch events has a switch_report()"
    else:
        assert json.loads(json.dumps(report, allow_nan=False)) == report
        assert type(report["fired"]) is bool and isinstance(report["rule"], str), report
        if switches:  # (it may have fired on the last update, before its switch event)
            assert report["fired"] and report["switch_step"] == switches[0] and len(switches) == 1, report
        else:
            assert "switch_step" not in report, report
