"""The study pages' export panel for real: a real small sweep, the real server, headless Chromium. The button
writes the policy file (the same as `hyperswitch export`), the page shows its path and contents, a second press
shows the existing file instead of overwriting it, and "overwrite" replaces it."""

from __future__ import annotations

import pytest

from hyperswitch.search.runner import run_sweep
from hyperswitch.search.space import load_space
from hyperswitch.switching import load_policy
from tests.dashboards.dashtools import chromium_page, dashboard_server

pytestmark = pytest.mark.slow

SPACE = """\
name: expdash
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: single
  optimizer: {name: sgdm, lr: $lr, momentum: 0.9}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: categorical, choices: [0.003, 0.1]}
search: {algorithm: grid, seed: 0}
seeds: 2
max_concurrent: 2
"""


def test_export_button_writes_and_shows_the_policy(local_ray, space_file, tmp_path):
    storage = tmp_path / "runs"
    study = run_sweep(load_space(space_file(SPACE)), storage=storage, out=lambda s: None)
    means = study.trials.groupby("config_id")["val_accuracy"].mean()
    best = str(means.idxmax())
    policies = tmp_path / "pol"
    written = policies / f"expdash_{best}.yaml"

    with dashboard_server(storage, tmp_path / "server.log", extra=("--policies", str(policies))) as base, \
            chromium_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/parameters?study=expdash")
        page.click("#parameters-export summary")
        page.click("#parameters-export-button")
        page.wait_for_selector("#parameters-export-output .hs-export-text")
        text = page.inner_text("#parameters-export-output")
        assert f"wrote {written.resolve()}" in text, text
        assert written.is_file() and "provenance:" in text and f"config_id: {best}" in text
        prov = load_policy(written).provenance
        assert prov["study"] == "expdash" and prov["config_id"] == best and prov["n_seeds"] == 2
        assert prov["mean"] == pytest.approx(means[best])
        before = written.read_bytes()
        page.screenshot(path=str(tmp_path / "export.png"), full_page=True)

        # again: the file exists, it is shown and left alone
        page.click("#parameters-export-button")
        page.wait_for_function("() => document.querySelector('#parameters-export-output').innerText"
                               ".includes('exists')")
        assert "tick 'overwrite'" in page.inner_text("#parameters-export-output")
        assert written.read_bytes() == before

        # overwrite ticked: written again (a new export time), the page says so
        page.click("#parameters-export-force input")
        page.click("#parameters-export-button")
        page.wait_for_function("() => document.querySelector('#parameters-export-output').innerText"
                               ".includes('wrote ')")
        assert load_policy(written).provenance["config_id"] == best
        assert not errors, errors
