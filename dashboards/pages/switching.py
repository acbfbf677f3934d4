"""Switching: the switch step/epoch distribution per workload and configuration with a table of mean and spread
over seeds (000's C5), and for IOMT studies the timeline of which candidate ran in each cycle and its score."""

from __future__ import annotations

import math
from typing import Any

from dash import Input, Output, dash_table, html

from dashboards import export_panel
from dashboards._shared import (
    FIGURE,
    MESSAGE,
    OPTIONS,
    VALUE,
    Context,
    Page,
    control,
    dropdown,
    graph,
    guarded,
    message_box,
    radio,
    study_page_top,
)
from hyperswitch.figures import switching as fs
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import study_table

P = "switching"
UNIT_LABELS = {"step": "step", "epoch": "epoch"}


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    by_choices = ["workload", "policy_type", *info.varied_parameters]
    n_configs = info.trials["config_id"].nunique() if "config_id" in info.trials else len(info.trials)
    # One row per configuration (000's C5) while that stays readable; else by the first parameter.
    default_by = ["workload", *(info.varied_parameters if n_configs <= 50 else info.varied_parameters[:1])]
    ptypes = set(info.trials["policy_type"].dropna().astype(str)) if "policy_type" in info.trials else set()
    note = None
    if ptypes and ptypes <= {"single"}:
        note = message_box("This study has no switching policy (policy type single): there are no switch points "
                           "or IOMT cycles to show.")
    return html.Div([
        *study_page_top(P, "Switching", info),
        note,
        html.Div([
            control("group by (one row per group)", dropdown(f"{P}-by", by_choices, default_by, multi=True,
                                                             clearable=True), "380px"),
            control("unit", radio(f"{P}-unit", list(UNIT_LABELS), "step", UNIT_LABELS)),
        ], className="hs-controls"),
        html.Div(id=f"{P}-message"),
        graph(f"{P}-graph"),
        html.H3("Switch point per group (mean, s.d., min, max over the runs that switched)"),
        html.Div(id=f"{P}-table"),
        html.H3("IOMT: candidate per cycle"),
        html.Div([control("run", dropdown(f"{P}-iomt-run", [], None), "260px")], className="hs-controls",
                 style=None if "iomt" in ptypes else {"display": "none"}),
        html.Div(id=f"{P}-iomt-message"),
        html.Div(graph(f"{P}-iomt", 320), style=None if "iomt" in ptypes else {"display": "none"}),
    ])


def _f(v: Any, digits: int = 1) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def table_component(t: fs.SwitchTable) -> Any:
    """One row per group (a DataTable: one component however many configurations the study has)."""
    names = {"step_mean": "step mean", "step_std": "step s.d.", "step_min": "step min", "step_max": "step max",
             "epoch_mean": "epoch mean", "epoch_std": "epoch s.d."}
    rows = t.rows.copy()
    keys = t.by or [rows.columns[0]]
    for k in keys:
        rows[k] = [v if isinstance(v, str) else f"{v:.4g}" if isinstance(v, float) else str(v) for v in rows[k]]
    for c, digits in (("step_mean", 1), ("step_std", 1), ("step_min", 0), ("step_max", 0), ("epoch_mean", 2),
                      ("epoch_std", 2)):
        rows[c] = [_f(v, digits) for v in rows[c]]
    cols = [{"name": f"{k} (binned)" if k in t.binned else k, "id": k} for k in keys]
    cols += [{"name": "runs", "id": "runs"}, {"name": "switched", "id": "switched"}]
    cols += [{"name": v, "id": k} for k, v in names.items()]
    # dash.dash_table's __init__ is all `# type: ignore` (its names come from a star import): mypy sees none
    return dash_table.DataTable(  # type: ignore[attr-defined]
        id=f"{P}-table-rows", columns=cols, data=rows[[c["id"] for c in cols]].to_dict("records"), page_size=15,
        sort_action="native", style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "system-ui, sans-serif", "fontSize": 13, "padding": "4px 8px", "textAlign": "left"},
        style_header={"fontWeight": 600, "backgroundColor": "#f4f6f8"})


def _points(ctx: Context, study: str, need_epoch: bool) -> tuple[Any, Any]:
    info = ctx.info(study)
    path = ctx.study_path(study)
    events = study_table(path, "events", ["step", "kind"])
    step_epochs = study_table(path, "steps", ["step", "epoch"]) if need_epoch else None
    return info, fs.switch_points(info.trials, events, step_epochs)


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-graph", "figure"), Output(f"{P}-table", "children"), Output(f"{P}-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-by", "value"), Input(f"{P}-unit", "value"),
                  Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE, MESSAGE], "switch points")
    def update(study: str, by: Any, unit: str, _n: Any) -> tuple[Any, Any, Any]:
        by = list(by or [])
        info, points = _points(ctx, study, need_epoch=True)
        if not points["switched"].any():
            ptypes = sorted(set(info.trials["policy_type"].dropna().astype(str))) if "policy_type" in info.trials \
                else []
            if ptypes == ["iomt"]:
                raise NotApplicable("IOMT interleaves its candidates cycle by cycle instead of switching once: "
                                    "see its timeline below")
            raise NotApplicable("no finished run of this study switched optimizer"
                                + (f" (policy type {', '.join(ptypes)})" if ptypes else ""))
        fig = fs.switch_figure(points, info.trials, by, unit)
        return fig, table_component(fs.switch_table(points, info.trials, by)), None

    @app.callback(Output(f"{P}-iomt-run", "options"), Output(f"{P}-iomt-run", "value"),
                  Input(f"{P}-study", "data"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([OPTIONS, VALUE], "IOMT runs")
    def runs(study: str, _n: Any) -> tuple[Any, Any]:
        events = study_table(ctx.study_path(study), "events", ["step", "kind"])
        ids = fs.iomt_runs(events)
        return [{"label": i, "value": i} for i in ids], (ids[0] if ids else None)

    @app.callback(Output(f"{P}-iomt", "figure"), Output(f"{P}-iomt-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-iomt-run", "value"))
    @guarded([FIGURE, MESSAGE], "IOMT timeline")
    def timeline(study: str, run: str | None) -> tuple[Any, Any]:
        if not run:
            return None, message_box("This study has no IOMT cycles (no iomt policy).")
        events = study_table(ctx.study_path(study), "events", ["step", "kind", "detail"])
        return fs.iomt_timeline_figure(fs.iomt_timeline_data(events, run)), None

    export_panel.register(app, ctx, P)


PAGE = Page(path="/switching", name="Switching", prefix=P, layout=layout, register=register)
