"""Parameter study: a metric against one parameter (mean and spread band over seeds), two (heatmap of the mean,
seeds per cell on hover) or more (parallel coordinates); and parameter importance (Optuna PED-ANOVA / fANOVA)."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, html

from dashboards import export_panel
from dashboards._shared import (
    FIGURE,
    MESSAGE,
    Context,
    Page,
    control,
    dropdown,
    graph,
    message_box,
    metric_choices,
    radio,
    study_page_top,
)
from hyperswitch.figures import data as fd
from hyperswitch.figures import parameter as fp
from hyperswitch.results.cache import cached, study_version

P = "parameters"
SPREAD_LABELS = {"std": "\u00b1 1 standard deviation", "ci95": "95% confidence interval"}
METHOD_LABELS = {"auto": "auto", "ped-anova": "PED-ANOVA", "fanova": "fANOVA"}


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    metrics, labels, default = metric_choices(info)
    params = info.varied_parameters or info.parameters
    note = None if info.varied_parameters else message_box(
        "No parameter takes more than one value among the trials yet." if len(info.trials) else
        "This study has no trials yet.")
    return html.Div([
        *study_page_top(P, "Parameter study", info),
        note,
        html.Div([
            control("metric", dropdown(f"{P}-metric", metrics, default, labels), "260px"),
            control("parameters (1: line, 2: heatmap, 3+: parallel coordinates)",
                    dropdown(f"{P}-params", params, params[:1], multi=True), "380px"),
            control("spread over seeds", radio(f"{P}-spread", list(SPREAD_LABELS), "std", SPREAD_LABELS)),
        ], className="hs-controls"),
        html.Div(id=f"{P}-message"),
        graph(f"{P}-graph"),
        html.Div([control("importance method", radio(f"{P}-method", list(METHOD_LABELS), "auto", METHOD_LABELS))],
                 className="hs-controls"),
        html.Div(id=f"{P}-importance-message"),
        graph(f"{P}-importance", 300),
    ])


def main_figure(ctx: Context, study: str, metric: str, params: list[str] | str | None, spread: str) -> Any:
    info = ctx.info(study)
    params = [params] if isinstance(params, str) else list(params or [])
    if not params:
        raise fd.NotApplicable("pick one parameter (a line), two (a heatmap) or more (parallel coordinates)")
    trials = info.trials
    if len(params) == 1:
        return fp.sensitivity_figure(fp.sensitivity_data(trials, params[0], metric, spread))
    if len(params) == 2:
        return fp.heatmap_figure(fp.heatmap_data(trials, params[0], params[1], metric, info.mode
                                                 if metric == info.metric else None))
    return fp.parallel_figure(fp.parallel_data(trials, params, metric))


def importance_figure(ctx: Context, study: str, metric: str, method: str) -> Any:
    info = ctx.info(study)
    params = [p for p in info.meta.get("sampled_names", info.parameters) if p in info.varied_parameters]
    mode = info.mode if metric == info.metric else None
    key = ("importance", str(info.path), study_version(info.path, "trials"), metric, method)
    d = cached(key, lambda: fp.importance_data(info.trials, params, metric, mode, method, info.distributions))
    return fp.importance_figure(d)


def register(app: Any, ctx: Context) -> None:
    from dashboards._shared import guarded

    @app.callback(Output(f"{P}-graph", "figure"), Output(f"{P}-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-metric", "value"), Input(f"{P}-params", "value"),
                  Input(f"{P}-spread", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE], "parameter study figure")
    def update(study: str, metric: str, params: Any, spread: str, _n: Any) -> tuple[Any, Any]:
        return main_figure(ctx, study, metric, params, spread), None

    @app.callback(Output(f"{P}-importance", "figure"), Output(f"{P}-importance-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-metric", "value"), Input(f"{P}-method", "value"),
                  Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE], "parameter importance")
    def importance(study: str, metric: str, method: str, _n: Any) -> tuple[Any, Any]:
        return importance_figure(ctx, study, metric, method), None

    export_panel.register(app, ctx, P)


PAGE = Page(path="/parameters", name="Parameter study", prefix=P, layout=layout, register=register)
