"""Learning curves: loss and accuracy against step, epoch or wall time, grouped by a parameter, by policy or by
policy family (first-order vs second-order vs Mixer on one plot, with other studies added for comparison),
with a band over the runs of each group and a marker where each run switched."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, dcc, html

from dashboards import export_panel
from dashboards._shared import (
    FIGURE,
    MESSAGE,
    Context,
    Page,
    combined_table,
    combined_trials,
    control,
    default_group,
    dropdown,
    graph,
    guarded,
    radio,
    study_list,
    study_page_top,
    switch_steps,
)
from hyperswitch.figures import curves as fc
from hyperswitch.figures._common import STEP_LABELS

P = "curves"
Y_CHOICES = ["loss", "val_loss", "val_accuracy", "lr"]
X_CHOICES = ["step", "epoch", "elapsed_s"]
SPREAD_LABELS = {"std": "\u00b1 1 s.d.", "ci95": "95% CI"}
GROUP_LABELS = {fc.NONE: "none (all runs)", fc.POLICY: "policy", fc.FAMILY: "policy family", "study": "study"}


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    groups = [fc.NONE, fc.POLICY, fc.FAMILY, "study", *info.varied_parameters]
    default = default_group(info, fc.POLICY)
    others = [n for n in ctx.study_names() if n != study]
    return html.Div([
        *study_page_top(P, "Learning curves", info),
        html.Div([
            control("y", radio(f"{P}-y", Y_CHOICES, "loss", STEP_LABELS)),
            control("x", radio(f"{P}-x", X_CHOICES, "step", STEP_LABELS)),
            control("group by", dropdown(f"{P}-group", groups, default, GROUP_LABELS), "220px"),
            control("band", radio(f"{P}-spread", list(SPREAD_LABELS), "std", SPREAD_LABELS)),
            control("scale", dcc.Checklist(id=f"{P}-logy", options=[{"label": "log y", "value": "log"}], value=[],
                                           inline=True)),
            control("compare with studies", dropdown(f"{P}-compare", others, [], multi=True, clearable=True),
                    "260px"),
        ], className="hs-controls"),
        html.Div(id=f"{P}-message"),
        graph(f"{P}-graph", 500),
    ])


def figure(ctx: Context, study: str, y: str, x: str, group: str, spread: str, logy: list[str] | None,
           compare: list[str] | None) -> Any:
    names = study_list(study, compare)
    trials = combined_trials(ctx, names)
    if group == "study":
        labels = trials.set_index("trial_id")["study"]
    else:
        labels = fc.run_groups(trials, group)
    if len(names) > 1 and group not in ("study", fc.POLICY, fc.FAMILY):  # a parameter means one study's values
        study_of = trials.set_index("trial_id")["study"]
        labels = study_of.reindex(labels.index) + ": " + labels.astype(str)
    steps = combined_table(ctx, names, "steps", ["step", *([x] if x != "step" else []), y])
    events = combined_table(ctx, names, "events", ["step", "kind"])
    d = fc.curves_data(steps, labels, switch_steps(events), x=x, y=y, spread=spread, group_by=group)
    return fc.curves_figure(d, log_y=bool(logy))


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-graph", "figure"), Output(f"{P}-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-y", "value"), Input(f"{P}-x", "value"),
                  Input(f"{P}-group", "value"), Input(f"{P}-spread", "value"), Input(f"{P}-logy", "value"),
                  Input(f"{P}-compare", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE], "learning curves")
    def update(study: str, y: str, x: str, group: str, spread: str, logy: Any, compare: Any,
               _n: Any) -> tuple[Any, Any]:
        return figure(ctx, study, y, x, group, spread, logy, compare), None

    export_panel.register(app, ctx, P)


PAGE = Page(path="/curves", name="Learning curves", prefix=P, layout=layout, register=register)
