"""Learning-rate rules: GeN's learning-rate trajectories (steps.lr, grouped, with bands), and damping-to-learning-
rate heatmaps per batch size with the best ratio of each batch size marked (004)."""

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
    default_group,
    dropdown,
    graph,
    guarded,
    metric_choices,
    radio,
    study_page_top,
    switch_steps,
)
from hyperswitch.figures import curves as fc
from hyperswitch.figures import lr_rules as fl
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import study_table

P = "lrrules"
GROUP_LABELS = {fc.NONE: "none (all runs)", fc.POLICY: "policy"}
X_LABELS = {"step": "step", "epoch": "epoch", "elapsed_s": "wall time (s)"}


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    params = info.varied_parameters
    groups = [fc.NONE, fc.POLICY, *params]
    damping, lr, batch = fl.guess_columns(params)
    metrics, labels, default = metric_choices(info)
    return html.Div([
        *study_page_top(P, "Learning-rate rules", info),
        html.H3("Learning-rate trajectories (GeN and other rules that change the learning rate)"),
        html.Div([
            control("group by", dropdown(f"{P}-group", groups, default_group(info, fc.NONE), GROUP_LABELS)),
            control("x", radio(f"{P}-x", list(X_LABELS), "step", X_LABELS)),
        ], className="hs-controls"),
        html.Div(id=f"{P}-traj-message"),
        graph(f"{P}-traj"),
        html.H3("Damping-to-learning-rate heatmaps per batch size"),
        html.Div([
            control("damping (x)", dropdown(f"{P}-damping", params, damping)),
            control("learning rate (y)", dropdown(f"{P}-lr", params, lr)),
            control("one heatmap per", dropdown(f"{P}-facet", [fl.NONE, *params], batch or fl.NONE)),
            control("metric", dropdown(f"{P}-metric", metrics, default, labels), "240px"),
        ], className="hs-controls"),
        html.Div(id=f"{P}-ratio-message"),
        graph(f"{P}-ratio", 480),
    ])


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-traj", "figure"), Output(f"{P}-traj-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-group", "value"), Input(f"{P}-x", "value"),
                  Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE], "learning-rate trajectories")
    def trajectories(study: str, group: str, x: str, _n: Any) -> tuple[Any, Any]:
        info = ctx.info(study)
        path = ctx.study_path(study)
        steps = study_table(path, "steps", ["step", *([x] if x != "step" else []), "lr"])
        if not fl.lr_varies(steps):
            raise NotApplicable("the learning rate is constant within every run of this study: no learning-rate "
                                "rule (GeN) or schedule to show")
        switched = switch_steps(study_table(path, "events", ["step", "kind"]))  # a switch often changes the lr
        d = fc.curves_data(steps, fc.run_groups(info.trials, group), switched, x=x, y="lr", group_by=group)
        return fc.curves_figure(d, log_y=True), None

    @app.callback(Output(f"{P}-ratio", "figure"), Output(f"{P}-ratio-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-damping", "value"), Input(f"{P}-lr", "value"),
                  Input(f"{P}-facet", "value"), Input(f"{P}-metric", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE], "damping-to-learning-rate heatmaps")
    def ratio(study: str, damping: str | None, lr: str | None, facet: str | None, metric: str,
              _n: Any) -> tuple[Any, Any]:
        if not damping or not lr:
            raise NotApplicable("this study does not vary a damping and a learning rate (pick them above if they "
                                "have other names)")
        info = ctx.info(study)
        mode = info.mode if metric == info.metric else None
        d = fl.ratio_heatmaps_data(info.trials, damping, lr, facet or fl.NONE, metric, mode)
        return fl.ratio_heatmaps_figure(d, metric), None

    export_panel.register(app, ctx, P)


PAGE = Page(path="/lrrules", name="Learning-rate rules", prefix=P, layout=layout, register=register)
