"""Trials: the optimisation history (the metric per configuration in sampling order, with the best so far) and
one row per trial (identity, every sampled parameter, the study's metric and the main metrics), sortable and
filterable in the table, narrowed by status. Selecting a row shows that trial's training loss and metric against
step with its events marked, and its events (switches, IOMT cycles, divergence) with their detail."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dash_table, dcc, html
from dash.exceptions import PreventUpdate

from dashboards import export_panel
from dashboards._shared import (
    DATA,
    FIGURE,
    MESSAGE,
    OPTIONS,
    Context,
    Page,
    control,
    dropdown,
    graph,
    guarded,
    metric_choices,
    study_page_top,
)
from hyperswitch.figures import history as fh
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import StudyInfo, study_table, study_version
from hyperswitch.results.schema import METRICS

P = "trials"
CELL = {"fontFamily": "system-ui, sans-serif", "fontSize": 13, "padding": "4px 8px", "textAlign": "left",
        "maxWidth": "260px", "overflow": "hidden", "textOverflow": "ellipsis"}
HEADER = {"fontWeight": 600, "backgroundColor": "#f4f6f8"}
SELECTED = "#dcebfb"


def _params(info: StudyInfo) -> list[str]:
    sampled = [p for p in info.meta.get("sampled_names", []) if p in info.trials.columns]
    return sampled or info.parameters


def columns(info: StudyInfo) -> list[fh.TrialColumn]:
    return fh.trial_columns(info.trials, _params(info), info.metric)


def _table_columns(cols: list[fh.TrialColumn]) -> list[dict[str, Any]]:
    out = []
    for c in cols:
        spec: dict[str, Any] = {"name": c.name, "id": c.id, "type": "numeric" if c.numeric else "text"}
        if c.numeric and c.id not in ("seed", "switch_step"):
            spec["format"] = {"specifier": ".4~g"}
        out.append(spec)
    return out


def status_options(info: StudyInfo) -> list[dict[str, str]]:
    return [{"label": f"{s} ({n})", "value": s} for s, n in fh.status_counts(info.trials).items()]


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    metrics, labels, default = metric_choices(info)
    if info.metric not in metrics:
        metrics, default = [info.metric, *metrics], info.metric
    statuses = list(fh.status_counts(info.trials))
    table = dash_table.DataTable(  # type: ignore[attr-defined]  # dash_table's names come from a star import
        id=f"{P}-table", columns=_table_columns(columns(info)), data=[], page_size=20, sort_action="native",
        filter_action="native", filter_options={"placeholder_text": "filter"}, row_selectable="single",
        selected_rows=[], style_table={"overflowX": "auto"},
        style_cell=CELL, style_header=HEADER, style_data_conditional=[ACTIVE],
        style_filter={"backgroundColor": "#fbfcfd"})
    return html.Div([
        *study_page_top(P, "Trials", info),
        html.Div([control("metric", dropdown(f"{P}-metric", metrics, default, labels), "260px")],
                 className="hs-controls"),
        html.Div(id=f"{P}-history-message"),
        graph(f"{P}-history", 420),
        html.H3("Trials"),
        html.Div([control("status", dcc.Checklist(id=f"{P}-status", options=status_options(info), value=statuses,
                                                  inline=True, className="hs-radio"), "420px")],
                 className="hs-controls"),
        html.Div("Sort by a column's arrows; filter under each header (e.g. > 0.5, or text); pick a row (or click "
                 "a cell) to see that trial's curves and events.", className="hs-sub"),
        html.Div(id=f"{P}-message"),
        table,
        dcc.Store(id=f"{P}-trial"),
        dcc.Store(id=f"{P}-shown"),  # what the table shows: the study's trials version and the statuses
        html.H3("Selected trial"),
        html.Div(id=f"{P}-detail-message"),
        graph(f"{P}-curves", 420),
        html.Div(id=f"{P}-events"),
    ])


def history_figure(ctx: Context, study: str, metric: str | None) -> Any:
    info = ctx.info(study)
    metric = metric or info.metric
    mode = info.mode if metric == info.metric else METRICS.get(metric, "max")
    return fh.history_figure(fh.history_data(info.trials, metric, mode))


def table_data(ctx: Context, study: str, statuses: list[str] | None) -> tuple[list[dict[str, Any]], list[Any]]:
    """The table's rows (trials with a ticked status) and the status options with their counts."""
    info = ctx.info(study)
    return fh.trial_rows(info.trials, columns(info), statuses or []), status_options(info)


def trial_detail(ctx: Context, study: str, trial: str) -> tuple[Any, Any]:
    """The trial's curves figure, and what it is with its events table."""
    info = ctx.info(study)
    t = info.trials
    if "trial_id" not in t or not (t["trial_id"].astype(str) == trial).any():
        raise NotApplicable(f"this study has no trial {trial!r}")
    row = t[t["trial_id"].astype(str) == trial].iloc[0]
    status = str(row.get("status", ""))
    path = ctx.study_path(study)
    events = study_table(path, "events", ["step", "kind", "detail"])
    col = fh.metric_step_column(info.metric, ["val_accuracy", "val_loss", "val_recon_error", "memory_bytes"])
    steps = study_table(path, "steps", ["step", "loss", *([col] if col else [])])
    d = fh.trial_curves_data(steps, events, trial, info.metric, status)
    what = f"trial {trial}: configuration {row.get('config_id', '?')}, seed {row.get('seed', '?')}, {status}"
    return fh.trial_curves_figure(d), html.Div([html.Div(what, className="hs-sub", id=f"{P}-trial-what"),
                                                events_component(d.events)])


def events_component(events: list[fh.TrialEvent]) -> Any:
    if not events:
        return html.Div("This trial has no events (no switch, IOMT cycle or divergence).", className="hs-sub")
    return html.Div([
        html.H4(f"Events ({len(events)})"),
        dash_table.DataTable(  # type: ignore[attr-defined]
            id=f"{P}-events-rows", columns=[{"name": "step", "id": "step", "type": "numeric"},
                                            {"name": "kind", "id": "kind"}, {"name": "detail", "id": "detail"}],
            data=[{"step": e.step, "kind": e.kind, "detail": e.detail} for e in events], page_size=15,
            sort_action="native", style_table={"overflowX": "auto"},
            style_cell={**CELL, "maxWidth": None, "whiteSpace": "normal"}, style_header=HEADER),
    ])


# A clicked cell picks its row: the row is highlighted, not the cell.
ACTIVE = {"if": {"state": "active"}, "backgroundColor": "inherit", "border": "1px solid rgb(211, 211, 211)"}


def _highlight(trial: str | None) -> list[dict[str, Any]]:
    if not trial:
        return [ACTIVE]
    quoted = trial.replace('"', '\\"')
    return [ACTIVE, {"if": {"filter_query": f'{{trial_id}} = "{quoted}"'}, "backgroundColor": SELECTED}]


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-history", "figure"), Output(f"{P}-history-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-metric", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE], "optimisation history")
    def history(study: str, metric: str | None, _n: Any) -> tuple[Any, Any]:
        return history_figure(ctx, study, metric), None

    @app.callback(Output(f"{P}-table", "data"), Output(f"{P}-status", "options"), Output(f"{P}-message", "children"),
                  Output(f"{P}-shown", "data"), Input(f"{P}-study", "data"), Input(f"{P}-status", "value"),
                  Input(f"{P}-refresh", "n_intervals"), State(f"{P}-shown", "data"))
    @guarded([DATA, OPTIONS, MESSAGE, "none"], "trials table")
    def table(study: str, statuses: list[str] | None, _n: Any, shown: str | None) -> tuple[Any, Any, Any, Any]:
        # A running study is redrawn every 10 s: the rows (thousands, maybe) are sent again only when they changed.
        key = repr((study, sorted(statuses or []), study_version(ctx.study_path(study), "trials")))
        if key == shown and dash.callback_context.triggered_id == f"{P}-refresh":
            return dash.no_update, dash.no_update, dash.no_update, dash.no_update
        rows, opts = table_data(ctx, study, statuses)
        return rows, opts, None, key

    @app.callback(Output(f"{P}-table", "selected_rows"), Input(f"{P}-table", "data"), Input(f"{P}-trial", "data"))
    def keep_selection(rows: list[dict[str, Any]] | None, trial: str | None) -> list[int]:
        """The chosen trial's radio stays on its row when the rows change (a running study, the status filter)
        and follows a click on a cell."""
        return [i for i, r in enumerate(rows or []) if r.get("id") == trial][:1]

    @app.callback(Output(f"{P}-trial", "data"), Input(f"{P}-table", "selected_row_ids"),
                  Input(f"{P}-table", "active_cell"), State(f"{P}-trial", "data"), prevent_initial_call=True)
    def choose(selected: list[str] | None, cell: dict[str, Any] | None, current: str | None) -> str:
        prop = dash.callback_context.triggered[0]["prop_id"] if dash.callback_context.triggered else ""
        trial = cell.get("row_id") if prop.endswith(".active_cell") and cell else next(iter(selected or []), None)
        if not trial or trial == current:
            raise PreventUpdate
        return str(trial)

    @app.callback(Output(f"{P}-curves", "figure"), Output(f"{P}-events", "children"),
                  Output(f"{P}-detail-message", "children"), Output(f"{P}-table", "style_data_conditional"),
                  Input(f"{P}-study", "data"), Input(f"{P}-trial", "data"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE, MESSAGE, DATA], "trial curves")
    def detail(study: str, trial: str | None, _n: Any) -> tuple[Any, Any, Any, Any]:
        if not trial:
            raise NotApplicable("pick a trial in the table to see its curves and events")
        fig, events = trial_detail(ctx, study, trial)
        return fig, events, None, _highlight(trial)

    export_panel.register(app, ctx, P)


PAGE = Page(path="/trials", name="Trials", prefix=P, layout=layout, register=register)
