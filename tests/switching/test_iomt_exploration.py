"""IOMT's exploration coefficient (issue 16, docs/algorithms.md#selection): Eq. (7) as printed
(``exploration: printed``, the default) and §3.4's prose (``exploration: prose``), against values computed by hand;
the stepper uses the spec's reading; validation, ``as_dict`` and resume with ``prose``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperswitch.errors import ConfigError
from hyperswitch.switching import Policy
from hyperswitch.switching._iomt_score import acquisition, exploration_coefficient
from tests.switching.test_iomt import THREE, model, resume_and_compare, run, stepper


def sig(x):
    return 1 / (1 + math.exp(-x))


MU, SD, N_HALVE = 0.2, 0.5, 3
# (omega_t, cycle i, printed coefficient, prose coefficient), by hand: printed = 1 - 2^-floor(i/3)·omega,
# prose = (1 - omega)·2^-floor(i/3); floor(i/3) = 0, 0, 1, 1, 2, 3 for i = 0, 2, 3, 5, 7, 9
HAND = [
    (0.0, 0, 1.0, 1.0),
    (0.0, 2, 1.0, 1.0),
    (0.0, 3, 1.0, 0.5),  # printed: halving is a no-op from scratch; prose: the first halving
    (0.0, 5, 1.0, 0.5),
    (0.0, 7, 1.0, 0.25),
    (0.0, 9, 1.0, 0.125),
    (0.4, 0, 0.6, 0.6),  # both start at Eq. (5)'s 1 - omega_t
    (0.4, 2, 0.6, 0.6),
    (0.4, 3, 0.8, 0.3),  # printed grows towards 1, prose shrinks towards 0
    (0.4, 5, 0.8, 0.3),
    (0.4, 7, 0.9, 0.15),
    (0.4, 9, 0.95, 0.075),
]


@pytest.mark.parametrize(("omega", "i", "printed", "prose"), HAND)
def test_coefficient_and_acquisition_hand_computed(omega, i, printed, prose):
    assert exploration_coefficient(i, N_HALVE, omega, True, "printed") == pytest.approx(printed, abs=1e-15)
    assert exploration_coefficient(i, N_HALVE, omega, True, "prose") == pytest.approx(prose, abs=1e-15)
    assert acquisition(MU, SD, i, N_HALVE, omega, True) == pytest.approx(sig(MU + printed * SD), abs=1e-15)
    assert acquisition(MU, SD, i, N_HALVE, omega, True, "printed") == pytest.approx(sig(MU + printed * SD),
                                                                                     abs=1e-15)
    assert acquisition(MU, SD, i, N_HALVE, omega, True, "prose") == pytest.approx(sig(MU + prose * SD), abs=1e-15)
    # without halving both readings are Eq. (5): 1 - omega_t
    for reading in ("printed", "prose"):
        assert exploration_coefficient(i, N_HALVE, omega, False, reading) == pytest.approx(1 - omega, abs=1e-15)
        assert acquisition(MU, SD, i, N_HALVE, omega, False, reading) == pytest.approx(sig(MU + (1 - omega) * SD),
                                                                                       abs=1e-15)


def test_some_hand_values_written_out():
    # omega 0, i 7, prose: sigmoid(0.2 + 0.25·0.5) = sigmoid(0.325) = 0.58054...
    assert acquisition(0.2, 0.5, 7, 3, 0.0, True, "prose") == pytest.approx(0.5805423, abs=1e-7)
    # omega 0.4, i 3, printed: sigmoid(0.2 + 0.8·0.5) = sigmoid(0.6) = 0.64566...
    assert acquisition(0.2, 0.5, 3, 3, 0.4, True, "printed") == pytest.approx(0.6456563, abs=1e-7)
    # a negative argument (the other branch of the stable sigmoid): mu -2, sd 0.4, omega 0.4, i 3, prose:
    # sigmoid(-2 + 0.3·0.4) = sigmoid(-1.88) = 1/(1 + e^1.88) = 0.13239...
    assert acquisition(-2.0, 0.4, 3, 3, 0.4, True, "prose") == pytest.approx(0.1323889, abs=1e-7)
    with pytest.raises(ValueError, match="exploration"):
        exploration_coefficient(0, 3, 0.0, True, "eq5")


TRANSFER = {"use_transferability": True, "omega_p": 0.9, "logme": 1.0, "leep": -0.5, "beta": 0.4}


@pytest.mark.parametrize("transfer", [False, True])
@pytest.mark.parametrize("reading", ["printed", "prose"])
def test_stepper_acquisition_uses_the_spec_reading(reading, transfer):
    tau, n_ini, n_halve, cycles = 3, 4, 2, 10
    spec = {"candidates": THREE, "tau": tau, "n_ini": n_ini, "n_halve": n_halve, "exploration": reading, "seed": 1,
            **(TRANSFER if transfer else {})}
    st = stepper(spec)
    omega = st.omega_t
    assert (omega > 0) == transfer
    checked = 0
    for c in range(cycles):
        if c >= n_ini:
            v = st.state_vector()
            mu, sd = st.surrogates.predict_all(v)
            half = 2.0 ** -(c // n_halve)
            coef = (1 - half * omega) if reading == "printed" else (1 - omega) * half
            expected = [sig(float(m) + coef * float(s)) for m, s in zip(mu, sd, strict=True)]
            assert st.acquisition_values(v) == pytest.approx(expected, abs=1e-12)
            r = run(st, 1, start=c * tau + 1)[0]
            assert r.events[0].detail["candidate"] == int(np.argmax(expected))
            checked += 1
            run(st, tau - 1, start=c * tau + 2)
        else:
            run(st, tau, start=c * tau + 1)
    assert checked == cycles - n_ini


def test_readings_choose_differently_from_scratch():
    """From scratch (omega_t 0) the printed coefficient stays 1 and the prose's halves: once the bonus is small,
    the two readings must make different choices somewhere on this run (they share cycles 0..n_ini-1)."""
    chosen = {}
    for reading in ("printed", "prose"):
        st = stepper({"candidates": THREE, "tau": 2, "n_ini": 4, "n_halve": 2, "exploration": reading, "seed": 3})
        reports = run(st, 2 * 24)
        chosen[reading] = [e.detail["candidate"] for r in reports for e in r.events]
    assert chosen["printed"][:4] == chosen["prose"][:4]
    assert chosen["printed"] != chosen["prose"]


def test_validation_default_and_as_dict():
    spec = Policy.from_spec({"type": "iomt"}).spec
    assert spec.exploration == "printed" and spec.as_dict()["exploration"] == "printed"
    prose = Policy.from_spec({"type": "iomt", "exploration": "prose"}).spec
    assert prose.exploration == "prose" and prose.as_dict()["exploration"] == "prose"
    assert Policy.from_spec(prose.as_dict()).spec == prose
    with pytest.raises(ConfigError) as err:
        Policy.from_spec({"type": "iomt", "exploration": "verbatim"})
    assert err.value.key == "policy.exploration" and err.value.value == "verbatim"


def test_resume_mid_cycle_with_prose_continues_identically():
    spec = {"candidates": THREE, "tau": 5, "n_ini": 3, "n_halve": 2, "exploration": "prose"}
    m1 = model()
    s1 = stepper(spec, m=m1)
    run(s1, 33)
    assert s1.pos == 3 and s1.cycle == 6
    _, rest1, _ = resume_and_compare(spec, m1, s1, 32, 34)
    assert len([e for r in rest1 for e in r.events]) == 6  # steps 36, ..., 61
    assert all(e.detail["select"] == "surrogate" for r in rest1 for e in r.events)
