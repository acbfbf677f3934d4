"""The dependency graph flows one way (docs: cli/dashboards -> export/figures -> search -> train ->
switching/workloads -> optim/results/config): results/ is the bottom layer that reads and writes studies, and
export, figures and the dashboard import no Ray, neither when imported nor when they export a study or draw its
figures."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "hyperswitch" / "results"
# What results/ may import from the package: itself, the error type, config (YAML reading, validators).
ALLOWED = ("hyperswitch.results", "hyperswitch.errors", "hyperswitch.config")

NO_RAY = "import sys; assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), " \
         "sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))[:5]"


def run_python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def package_imports(path: Path, package: str = "hyperswitch.results") -> list[tuple[int, str]]:
    """Every ``hyperswitch...`` module a file of ``package`` imports (top level or inside a function), as
    (line, module)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "hyperswitch"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module == "hyperswitch":  # from hyperswitch import X: X is the module (or a lazy name)
                out += [(node.lineno, f"hyperswitch.{a.name}") for a in node.names]
            elif module.split(".")[0] == "hyperswitch":
                out.append((node.lineno, module))
    return out


def test_results_imports_nothing_above_it():
    files = sorted(RESULTS.rglob("*.py"))
    assert len(files) >= 8, files
    bad = [f"{f.relative_to(ROOT)}:{line}: {module}" for f in files for line, module in package_imports(f)
           if not any(module == a or module.startswith(a + ".") for a in ALLOWED)]
    assert not bad, "results/ is the bottom layer; it imports:\n" + "\n".join(bad)


def test_the_import_checker_sees_function_level_and_relative_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom . import store\n\ndef f():\n    from hyperswitch.search import space\n"
                     "    from ..figures import data\n    from hyperswitch import train\n    import hyperswitch.cli\n")
    assert [m for _, m in package_imports(probe)] == ["hyperswitch.results", "hyperswitch.search",
                                                      "hyperswitch.figures", "hyperswitch.train", "hyperswitch.cli"]


def test_importing_export_and_figures_imports_no_ray():
    r = run_python("import hyperswitch.export, hyperswitch.figures; " + NO_RAY)
    assert r.returncode == 0, r.stderr
    def modules(folder: str) -> list[str]:
        return [f"{folder.replace('/', '.')}.{p.stem}" for p in sorted((ROOT / folder).glob("*.py"))
                if p.stem != "__init__"]

    every = ["hyperswitch.results", *modules("hyperswitch/results"), *modules("hyperswitch/export"),
             *modules("hyperswitch/figures"), *modules("dashboards"), *modules("dashboards/pages")]
    r = run_python(f"import importlib\nfor m in {every!r}:\n    importlib.import_module(m)\n{NO_RAY}")
    assert r.returncode == 0, r.stderr


def test_export_keeps_its_public_names():
    from hyperswitch.export import select as export_select
    from hyperswitch.results import select as results_select

    for name in ("Choice", "Selection", "check_metric", "select_configurations", "SELECTIONS", "TIME_METRIC"):
        assert getattr(export_select, name) is getattr(results_select, name)


SPACE = """\
name: nr
workload: {name: digits_mlp, batch_size: 32}
policy:
  type: single
  optimizer: {name: sgdm, lr: $lr, momentum: $momentum}
train: {steps: 20, eval_every: 10}
parameters:
  lr: {type: float, low: 0.001, high: 0.5, log: true}
  momentum: {type: categorical, choices: [0.5, 0.9]}
search: {algorithm: random, samples: 4, seed: 0}
seeds: 2
"""


@pytest.fixture()
def small_study(tmp_path: Path) -> Path:
    """A finished study of 4 configurations x 2 seeds, written by the sweep's own ``prepare_study`` and the real
    store (no Ray started, no training)."""
    from hyperswitch.search.runner import prepare_study
    from hyperswitch.search.space import space_from_text

    space = space_from_text(SPACE, str(tmp_path / "nr.yaml"))
    store = prepare_study(space, tmp_path / "runs", None, resume=False)
    for c, (lr, mom) in enumerate([(0.001, 0.5), (0.01, 0.9), (0.1, 0.5), (0.4, 0.9)]):
        for seed in (0, 1):
            row = {"trial_id": f"c{c:04d}-s{seed}", "config_id": f"c{c:04d}", "seed": seed, "status": "completed",
                   "workload": "digits_mlp", "policy_type": "single", "optimizers": "sgdm", "lr": lr,
                   "momentum": mom, "val_accuracy": 0.5 + 0.1 * c + 0.01 * seed, "wall_time_s": 1.0 + c}
            steps = [{"step": s, "epoch": 1, "loss": 1.0 / s, "lr": lr, "optimizer": "sgdm", "elapsed_s": 0.01 * s,
                      "memory_bytes": 100} for s in range(1, 21)]
            store.write_trial_parts(row, steps, [])
    store.compact()
    store.update_meta(status="completed")
    return store.root


def test_exporting_a_study_and_drawing_its_figures_imports_no_ray(small_study, tmp_path):
    code = textwrap.dedent(f"""
        import json, sys
        from hyperswitch.export import export_study
        from hyperswitch.figures import parameter as fp
        from hyperswitch.results.cache import study_info
        [r] = export_study({str(small_study)!r}, output={str(tmp_path / "best.yaml")!r})
        info = study_info({str(small_study)!r})
        d = fp.importance_data(info.trials, ["lr", "momentum"], "val_accuracy", "max", "fanova", info.distributions)
        print(json.dumps([r.choice.config_id, d.params]))
    """) + NO_RAY
    r = run_python(code, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    config_id, params = json.loads(r.stdout.splitlines()[-1])
    assert config_id == "c0003" and sorted(params) == ["lr", "momentum"]
