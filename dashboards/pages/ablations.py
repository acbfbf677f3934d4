"""Ablations: on/off comparisons with error bars over runs (switcher, corrector, transferability, halving,
random/cyclical selection, ...): one bar per value of the chosen factor, pooled over the other parameters."""

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
    guarded,
    message_box,
    metric_choices,
    radio,
    study_page_top,
)
from hyperswitch.figures import ablations as fa

P = "ablations"
SPREAD_LABELS = {"std": "\u00b1 1 s.d.", "ci95": "95% CI"}


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    factors = fa.ablation_factors(info.trials, info.parameters)
    metrics, labels, default = metric_choices(info)
    factor = factors[0][0] if factors else None
    note = None
    if not factors:
        note = message_box("This study has no on/off factor to compare: no parameter takes 2 to "
                           f"{fa.MAX_LEVELS} values (e.g. T1 = 0 vs T1 > 0, select, halving, "
                           "use_transferability) and all trials use one policy.")
    return html.Div([
        *study_page_top(P, "Ablations", info),
        note,
        html.Div([
            control("factor", dropdown(f"{P}-factor", [f for f, _ in factors], factor, dict(factors)), "320px"),
            control("side by side per", dropdown(f"{P}-split", [fa.NONE, *[f for f, _ in factors]],
                                                 fa.default_split([f for f, _ in factors], factor))),
            control("metric", dropdown(f"{P}-metric", metrics, default, labels), "260px"),
            control("error bars", radio(f"{P}-spread", list(SPREAD_LABELS), "std", SPREAD_LABELS)),
        ], className="hs-controls"),
        html.Div(id=f"{P}-message"),
        graph(f"{P}-graph"),
    ])


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-graph", "figure"), Output(f"{P}-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-factor", "value"), Input(f"{P}-split", "value"),
                  Input(f"{P}-metric", "value"), Input(f"{P}-spread", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, MESSAGE], "ablations")
    def update(study: str, factor: str | None, split: str | None, metric: str, spread: str,
               _n: Any) -> tuple[Any, Any]:
        if not factor:
            raise fa.NotApplicable("this study has no on/off factor to compare")
        split = split or fa.NONE
        parts = fa.ablation_split_data(ctx.info(study).trials, factor, split, metric, spread)
        return fa.ablation_figure(parts, factor, split), None

    export_panel.register(app, ctx, P)


PAGE = Page(path="/ablations", name="Ablations", prefix=P, layout=layout, register=register)
