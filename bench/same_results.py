"""Does a change leave results alone? Runs the same fixed-seed sweeps with this checkout and with another revision
(a temporary ``git worktree``), then compares every deterministic column of their trials, steps and events tables
(not a test: it runs real sweeps on an embedded local Ray, about a minute per revision).

Wall-clock columns (``wall_time_s``, ``samples_per_s``, ``time_to_target_s``, ``elapsed_s``) and the process's
``peak_rss_bytes`` change from run to run and are left out; every other column must be equal, floats bit for bit.

    python bench/same_results.py --base HEAD~3            # the spaces in bench/same_results/
    python bench/same_results.py --base main --spaces bench/same_results/iomt.yaml

Exit status 0 when every table is the same, 1 when one differs (the differing columns are printed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NONDETERMINISTIC = {"wall_time_s", "samples_per_s", "time_to_target_s", "elapsed_s", "peak_rss_bytes"}
TABLES = {"trials": ("trial_id",), "steps": ("trial_id", "step"), "events": ("trial_id", "step", "kind")}


def run_sweeps(checkout: Path, spaces: list[Path], storage: Path) -> None:
    """Each space swept by ``checkout``'s code (first on the path, also for Ray's workers: they start in its
    folder), one trial at a time as the space files say."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    for space in spaces:
        proc = subprocess.run([sys.executable, "-m", "hyperswitch", "sweep", str(space), "--storage", str(storage)],
                              cwd=checkout, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{checkout}: sweep {space.name} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def load(storage: Path, study: str, table: str):  # -> a DataFrame or None (pandas is imported late)
    import pandas as pd
    import pyarrow.parquet as pq

    parts = sorted((storage / study).rglob(f"{table}*.parquet"))
    if not parts:
        return None
    df = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    return df.sort_values(list(TABLES[table]), kind="stable").reset_index(drop=True)


def compare(a_dir: Path, b_dir: Path, studies: list[str]) -> list[str]:
    problems = []
    for study in studies:
        for table in TABLES:
            a, b = load(a_dir, study, table), load(b_dir, study, table)
            if a is None or b is None:
                if (a is None) != (b is None):
                    problems.append(f"{study} {table}: written by one revision only")
                continue
            if list(a.columns) != list(b.columns) or len(a) != len(b):
                problems.append(f"{study} {table}: columns or row counts differ ({len(a)} vs {len(b)} rows)")
                continue
            cols = [c for c in a.columns if c not in NONDETERMINISTIC]
            differ = [c for c in cols if not a[c].equals(b[c])]
            print(f"{study:22s} {table:7s} {len(a):5d} rows  {len(cols) - len(differ)}/{len(cols)} columns equal")
            for c in differ:
                problems.append(f"{study} {table}.{c}: base {a[c].tolist()[:3]} vs this {b[c].tolist()[:3]}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the revision to compare with (a commit, branch or tag)")
    ap.add_argument("--spaces", nargs="+", type=Path, default=sorted((ROOT / "bench" / "same_results").glob("*.yaml")))
    args = ap.parse_args()
    from hyperswitch.config.yamlio import load_file

    studies = [str(load_file(p, "search space")[0]["name"]) for p in args.spaces]
    with tempfile.TemporaryDirectory(prefix="hyperswitch-same-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True,
                       capture_output=True)
        try:
            out_base, out_this = Path(tmp) / "runs-base", Path(tmp) / "runs-this"
            run_sweeps(base, [p.resolve() for p in args.spaces], out_base)
            run_sweeps(ROOT, [p.resolve() for p in args.spaces], out_this)
            problems = compare(out_base, out_this, studies)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    for p in problems:
        print("DIFFERS:", p)
    print(f"{'same results' if not problems else f'{len(problems)} differences'} "
          f"({args.base} vs this checkout, {len(studies)} studies)")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
