"""The dashboard works from a regular (non-editable) install: build the project's wheel, install it into a fresh
virtual environment (dependencies taken from the test environment, not the checkout), and from a folder outside
the checkout import the app, build its layout and serve a page of a study."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.dashboards.test_cli_pages import write_study

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CHECK = """
import sys
from pathlib import Path
import dashboards, hyperswitch
from dashboards.app import create_app
venv = Path(sys.prefix).resolve()
for mod in (dashboards, hyperswitch):
    assert Path(mod.__file__).resolve().is_relative_to(venv), mod.__file__  # the installed copy
app = create_app(sys.argv[1], warm=False)
client = app.server.test_client()
assert client.get("/").status_code == 200 and client.get("/_dash-layout").status_code == 200
from dashboards._shared import Context
from dashboards.pages import PAGES, parameters
ctx = Context(Path(sys.argv[1]))
for page in PAGES:
    page.layout(ctx, "part")
fig = parameters.main_figure(ctx, "part", "val_accuracy", ["lr", "T1"], "std")
print("OK", fig.data[0].type, Path(dashboards.__file__).parent)
"""


def test_wheel_install_imports_and_builds_the_app(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("hyperswitch", "dashboards"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    # The PEP 517 backend directly (what `python -m build --no-isolation` calls): no network, no build env.
    built = subprocess.run([sys.executable, "-c", "import sys, setuptools.build_meta as b; "
                            "print(b.build_wheel(sys.argv[1]))", str(dist)], cwd=src, capture_output=True,
                           text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = dist / built.stdout.strip().splitlines()[-1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-3000:]
    # Dependencies from the test environment, appended after the venv's own site-packages (a plain path: the
    # checkout's editable-install hook there is not run).
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    storage = tmp_path / "runs"
    write_study(storage, running=False)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run = subprocess.run([str(py), "-c", CHECK, str(storage)], cwd=outside, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("OK heatmap") and str(venv) in run.stdout
    cli = subprocess.run([str(venv / "bin" / "hyperswitch"), "dashboard", "--help"], cwd=outside,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and "--storage" in cli.stdout
