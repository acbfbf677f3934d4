"""Memory and time: peak memory per policy and per phase (SGD vs K-FAC vs Mixer, 000's C4; add other studies to
compare), time to target per policy, and the accuracy-vs-time Pareto front (a multi-objective study's: its first
two objectives, each in its own direction, the first on y)."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, html

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
)
from hyperswitch.figures import curves as fc
from hyperswitch.figures import memory as fm
from hyperswitch.figures._common import metric_label

P = "memory"
GROUP_LABELS = {fc.POLICY: "policy", fc.FAMILY: "policy family", "study": "study"}
SPREAD_LABELS = {"std": "\u00b1 1 s.d.", "ci95": "95% CI"}
PARETO_Y = ["val_accuracy", "best_val_accuracy"]
PARETO_X = ["wall_time_s", "time_to_target_s"]


def pareto_axes(info: Any) -> tuple[list[str], str, list[str], str]:
    """(y choices, y default, x choices, x default): a multi-objective study's first two objectives first."""
    own = fm.study_pareto_metrics(info.meta)
    if own is None:
        return PARETO_Y, "val_accuracy", PARETO_X, "wall_time_s"
    return ([own[0], *[m for m in PARETO_Y if m != own[0]]], own[0],
            [own[2], *[m for m in PARETO_X if m != own[2]]], own[2])


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    ys, y0, xs, x0 = pareto_axes(info)
    groups = [fc.POLICY, fc.FAMILY, "study", *info.varied_parameters]
    others = [n for n in ctx.study_names() if n != study]
    return html.Div([
        *study_page_top(P, "Memory and time", info),
        html.Div([
            control("group by", dropdown(f"{P}-group", groups, default_group(info, fc.POLICY), GROUP_LABELS),
                    "220px"),
            control("error bars", radio(f"{P}-spread", list(SPREAD_LABELS), "std", SPREAD_LABELS)),
            control("compare with studies", dropdown(f"{P}-compare", others, [], multi=True, clearable=True),
                    "260px"),
        ], className="hs-controls"),
        html.Div(id=f"{P}-message"),
        html.Div([html.Div(graph(f"{P}-peak")), html.Div(graph(f"{P}-phase"))], className="hs-row"),
        html.Div([html.Div(graph(f"{P}-target")), html.Div([
            html.Div([control("y" if y0 != "val_accuracy" else "accuracy",
                              radio(f"{P}-pareto-y", ys, y0, {m: metric_label(m) for m in ys})),
                      control("x" if x0 != "wall_time_s" else "time",
                              radio(f"{P}-pareto-x", xs, x0, {m: metric_label(m) for m in xs}))],
                     className="hs-controls"),
            graph(f"{P}-pareto")])], className="hs-row"),
    ])


def _labels(trials: Any, group: str, several: bool) -> Any:
    if group == "study":
        return trials["study"].astype(str)
    labels = fc.run_groups(trials, group)
    labels.index = trials.index
    if several and group not in (fc.POLICY, fc.FAMILY):
        labels = trials["study"].astype(str) + ": " + labels.astype(str)
    return labels


def register(app: Any, ctx: Context) -> None:
    inputs = [Input(f"{P}-study", "data"), Input(f"{P}-group", "value"), Input(f"{P}-spread", "value"),
              Input(f"{P}-compare", "value"), Input(f"{P}-refresh", "n_intervals")]

    @app.callback(Output(f"{P}-peak", "figure"), Output(f"{P}-message", "children"), *inputs)
    @guarded([FIGURE, MESSAGE], "peak memory")
    def peak(study: str, group: str, spread: str, compare: Any, _n: Any) -> tuple[Any, Any]:
        names = study_list(study, compare)
        trials = combined_trials(ctx, names)
        d = fm.group_bars_data(trials, _labels(trials, group, len(names) > 1), "peak_memory_bytes", spread,
                               by=GROUP_LABELS.get(group, group))
        return fm.group_bars_figure(d, "peak memory per " + GROUP_LABELS.get(group, group)), None

    @app.callback(Output(f"{P}-phase", "figure"), *inputs)
    @guarded([FIGURE], "memory per phase")
    def phase(study: str, group: str, spread: str, compare: Any, _n: Any) -> Any:
        names = study_list(study, compare)
        trials = combined_trials(ctx, names)
        fin = trials[trials["status"].isin(("completed", "diverged", "stopped"))]
        labels = _labels(fin, group, len(names) > 1)
        labels.index = fin["trial_id"].astype(str)
        steps = combined_table(ctx, names, "steps", ["optimizer", "memory_bytes"])
        return fm.phase_memory_figure(fm.phase_memory_data(steps, labels, by=GROUP_LABELS.get(group, group)))

    @app.callback(Output(f"{P}-target", "figure"), *inputs)
    @guarded([FIGURE], "time to target")
    def target(study: str, group: str, spread: str, compare: Any, _n: Any) -> Any:
        names = study_list(study, compare)
        trials = combined_trials(ctx, names)
        d = fm.group_bars_data(trials, _labels(trials, group, len(names) > 1), "time_to_target_s", spread,
                               by=GROUP_LABELS.get(group, group))
        return fm.group_bars_figure(d, "time to target accuracy per " + GROUP_LABELS.get(group, group))

    @app.callback(Output(f"{P}-pareto", "figure"), Input(f"{P}-study", "data"), Input(f"{P}-pareto-y", "value"),
                  Input(f"{P}-pareto-x", "value"), Input(f"{P}-compare", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE], "Pareto front")
    def pareto(study: str, y: str, x: str, compare: Any, _n: Any) -> Any:
        trials = combined_trials(ctx, study_list(study, compare))
        if "config_id" in trials and trials["study"].nunique() > 1:
            trials = trials.assign(config_id=trials["study"] + "/" + trials["config_id"].astype(str))
        return fm.pareto_figure(fm.pareto_data(trials, y, x))

    export_panel.register(app, ctx, P)


PAGE = Page(path="/memory", name="Memory and time", prefix=P, layout=layout, register=register)
