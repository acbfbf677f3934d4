"""scripts/gpu_check.sh and scripts/gpu_check.py (issue 18) on a machine without a GPU: the script refuses at once,
starting nothing, and the checks' code runs on the CPU at tiny sizes (``--device cpu --quick``), the CPU compared
with itself. What only a GPU can show (CUDA equal to the CPU in float64, CUDA peak memory, two trials sharing a
GPU, GPU speed) waits for a lent GPU: docs/benchmarks.md, "GPU check"."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._helpers import ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
BODY = ROOT / "scripts" / "gpu_check.py"
ALL_CHECKS = ["optimizers_vs_cpu", "policies_vs_cpu", "sweep_gpu1", "sweep_gpu_half", "workloads",
              "optimizer_step_times", "bench_kfac", "bench_gen"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "CUDA_VISIBLE_DEVICES")}
    env.update(extra)
    return env


def _checks(out: str) -> dict[str, str]:
    return dict(re.findall(r"^CHECK (\w+): (PASS|FAIL|SKIP)", out, re.M))


@pytest.mark.parametrize("visible", ["", "-1"])
def test_script_refuses_at_once_when_no_gpu_is_visible(visible, tmp_path):
    # PYTHON names no interpreter and /tmp/site is moved: had the script gone past its first test, it would
    # have failed otherwise or left a folder behind
    site = tmp_path / "site"
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                       env=_env(CUDA_VISIBLE_DEVICES=visible, PYTHON=str(tmp_path / "no-python"),
                                GPU_CHECK_SITE=str(site)))
    elapsed = time.monotonic() - t0
    out = p.stdout + p.stderr
    assert p.returncode == 3, out
    assert "gpu_check: FAIL: no GPU is visible" in out and "Nothing was set up or run" in out, out
    assert "CHECK" not in out and "installing" not in out, out
    assert not site.exists()
    assert elapsed < 5, elapsed


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists(),
                    reason="this machine has an NVIDIA driver: the script would run for real")
def test_script_refuses_on_a_machine_without_a_gpu(tmp_path):
    p = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30,
                       env=_env(PYTHON=str(tmp_path / "no-python"), GPU_CHECK_SITE=str(tmp_path / "site")))
    assert p.returncode == 3 and "no GPU is visible" in p.stderr, p.stdout + p.stderr
    assert "CHECK" not in p.stdout


def test_body_refuses_without_cuda_by_default():
    """The real CUDA path is the default: without CUDA it names the problem and runs no check."""
    p = subprocess.run([sys.executable, str(BODY)], capture_output=True, text=True, timeout=120,
                       env=_env(CUDA_VISIBLE_DEVICES=""))
    assert p.returncode == 3, p.stdout + p.stderr
    assert "gpu_check: FAIL: no GPU is visible" in p.stdout and "--device cpu --quick" in p.stdout
    assert not _checks(p.stdout)


@pytest.fixture
def body():
    """scripts/gpu_check.py imported in this process (its checks without Ray need no subprocess); torch's thread
    count, which its main sets, is put back."""
    import torch

    spec = importlib.util.spec_from_file_location("gpu_check", BODY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def test_required_check_that_could_not_run_fails_and_sweeps_can_be_left_out(body, capsys):
    rc = body.main(["--device", "cpu", "--quick", "--no-sweeps", "--budget", "0",
                    "--only", "optimizers_vs_cpu", "sweep_gpu1"])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert _checks(out) == {"optimizers_vs_cpu": "SKIP", "sweep_gpu1": "SKIP"}
    assert "CHECK sweep_gpu1: SKIP not asked (--no-sweeps)" in out
    assert "CHECK optimizers_vs_cpu: SKIP could not run" in out
    assert re.search(r"^SUMMARY: FAIL .*could not run: optimizers_vs_cpu, sweep_gpu1; required and not passed: "
                     r"optimizers_vs_cpu$", out, re.M), out


def test_cpu_dry_run_of_the_cpu_device_comparisons(body, capsys):
    rc = body.main(["--device", "cpu", "--quick", "--only", "optimizers_vs_cpu", "policies_vs_cpu"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "4 policy types" in next(x for x in out.splitlines() if x.startswith("CHECK policies_vs_cpu: PASS"))
    line = next(x for x in out.splitlines() if x.startswith("CHECK optimizers_vs_cpu: PASS"))
    assert "worst relative difference 0.0e+00" in line  # the CPU against itself: identical
    assert "compared with themselves on cpu: sf" in line  # sf draws labels: detected as random


@pytest.mark.slow  # ~90 s on 2 cores: starts a local Ray twice over (two sweeps) and runs the bench scripts
def test_cpu_dry_run_of_every_check():
    p = subprocess.run([sys.executable, str(BODY), "--device", "cpu", "--quick"], capture_output=True, text=True,
                       timeout=560, env=_env())
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    assert _checks(p.stdout) == dict.fromkeys(ALL_CHECKS, "PASS"), p.stdout
    lines = {m.group(1): m.group(0) for m in re.finditer(r"^CHECK (\w+): .*$", p.stdout, re.M)}
    assert "4 policy types" in lines["policies_vs_cpu"]
    assert "(cpu_tensor_bytes)" in lines["sweep_gpu1"] and "2/2 trials completed" in lines["sweep_gpu1"]
    assert "two trials of 0.5 at once: yes" in lines["sweep_gpu_half"], lines["sweep_gpu_half"]
    for name in ("curves_autoencoder", "resnet_small", "text_lm", "mlp_wide", "transfer", "char_lm"):
        assert name in lines["workloads"]
    assert "GeN relative speed: digits" in lines["bench_gen"]
    assert re.search(r"^SUMMARY: PASS .*could not run: none; required and not passed: none$", p.stdout, re.M)
