"""Per-case best value of each arm of gen_synthetic_starts (at 1,000 iterations and at 180) and the two claims
counted over the 8 (function, start) cases (docs/findings.md#gen_synthetic_starts).

    python scripts/analyze_gen_synthetic.py [STUDY_FOLDER]     # default runs/catalogue/gen_synthetic_starts
"""
import sys

import numpy as np
import pandas as pd

from hyperswitch.results import open_study

s = open_study(sys.argv[1] if len(sys.argv) > 1 else "runs/catalogue/gen_synthetic_starts")
t = s.trials.copy()
st = s.steps
l180 = st[st.step == 180].set_index("trial_id")["loss"]
t["f180"] = t.trial_id.map(l180)
t["final"] = t.val_loss.where(t.status == "completed", np.inf)
t.loc[t.status != "completed", "f180"] = t.loc[t.status != "completed", "f180"].fillna(np.inf)
lrs = sorted(t.lr.unique())
print("status:", t.status.value_counts().to_dict())
rows = []
for (case, base, rule), g in t.groupby(["case", "base", "rule"]):
    for col in ("final", "f180"):
        g2 = g.sort_values(col)
        best = g2.iloc[0]
        rows.append(dict(case=case, base=base, rule=rule, at=col, best=best[col], lr=best.lr,
                         edge=best.lr in (lrs[0], lrs[-1])))
r = pd.DataFrame(rows)
for col in ("final", "f180"):
    R = r[r["at"] == col]
    print(f"\n=== {col}: best value per arm (lr at best; * = grid edge)")
    cells = R.assign(v=R.apply(lambda x: f"{x.best:.2e}@{x.lr:g}{'*' if x.edge else ''}", axis=1))
    piv = cells.pivot_table(index="case", columns=["base", "rule"], values="v", aggfunc="first")
    print(piv.to_string())
    # claim 1: GeN-SGD (as written) beats every other arm
    for variant in ("gen", "gen_noisefree", "gen_clip"):
        wins = 0
        for _case, g in R.groupby("case"):
            mine = g[(g.base == "sgd") & (g.rule == variant)].best.iloc[0]
            others = g[~((g.base == "sgd") & (g.rule == variant))].best
            wins += int(mine < others.min())
        print(f"claim 1, GeN-SGD ({variant}) lowest of all arms: {wins}/8 cases")
    # claim 2: GeN lowers each base's best
    for base in ("sgd", "adam"):
        for variant in ("gen", "gen_noisefree", "gen_clip"):
            wins = 0
            for _case, g in R[R.base == base].groupby("case"):
                wins += int(g[g.rule == variant].best.iloc[0] < g[g.rule == "constant"].best.iloc[0])
            print(f"claim 2, {base}: {variant} below constant: {wins}/8 cases")
