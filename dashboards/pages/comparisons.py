"""Comparisons: every arm of one factor of a study (``variant``, ``optimizer``, the policy, the corrector on/off,
...) against a reference arm, paired by seed (issue 16). A forest plot of the mean paired difference with its 95%
interval per arm, and a table: runs, failure rate (diverged or no value, Wilson interval), mean ± s.d. over the
runs that did not fail, the paired difference with its interval, pairs and the runs that are not pairs (and why),
the difference of the failure rates (Newcombe) and a verdict helper. Numbers from
:mod:`hyperswitch.figures.comparisons`."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, html

from dashboards import export_panel
from dashboards._shared import (
    FIGURE,
    MESSAGE,
    NONE,
    OPTIONS,
    VALUE,
    Context,
    Page,
    control,
    dropdown,
    graph,
    guarded,
    message_box,
    metric_choices,
    options,
    radio,
    study_page_top,
)
from hyperswitch.figures import ablations as fa
from hyperswitch.figures import comparisons as fcmp
from hyperswitch.figures._stats import PAIRED_METHODS
from hyperswitch.figures.data import NotApplicable

P = "comparisons"
METHOD_LABELS = {"t": "Student t", "bootstrap": "percentile bootstrap"}


def layout(ctx: Context, study: str) -> Any:
    info = ctx.info(study)
    factors = fa.ablation_factors(info.trials, info.parameters)
    metrics, labels, default = metric_choices(info)
    names = [f for f, _ in factors]
    preferred = [f for f in names if f in ("variant", "ablation", "optimizer", "policy")]
    factor: str | None = (preferred or names)[0] if names else None
    note = None
    if not factors:
        note = message_box("This study has no factor to compare arms of: no parameter takes 2 to "
                           f"{fa.MAX_LEVELS} values and all trials use one policy.")
    arms = fcmp.arm_labels(info.finished(), factor) if factor and len(info.finished()) else []
    return html.Div([
        *study_page_top(P, "Comparisons", info),
        note,
        html.Div([
            control("arms: values of", dropdown(f"{P}-factor", names, factor, dict(factors)), "300px"),
            control("reference arm", dropdown(f"{P}-reference", arms, fcmp.default_reference(arms)), "260px"),
            control("separately per", dropdown(f"{P}-split", [fa.NONE, *names], fa.default_split(names, factor))),
            control("metric", dropdown(f"{P}-metric", metrics, default, labels), "260px"),
            control("95% interval", radio(f"{P}-method", list(PAIRED_METHODS), "t", METHOD_LABELS)),
        ], className="hs-controls"),
        html.Div(id=f"{P}-message"),
        graph(f"{P}-graph", 320),
        html.Div(id=f"{P}-table"),
        html.Div(id=f"{P}-note", className="hs-sub"),
    ])


def table_component(d: fcmp.Comparisons) -> Any:
    rows = fcmp.comparison_rows(d)
    cols = [c for c in fcmp.TABLE_COLUMNS if c in rows[0]]
    return html.Table([html.Thead(html.Tr([html.Th(c) for c in cols])),
                       html.Tbody([html.Tr([html.Td(str(r[c])) for c in cols]) for r in rows])],
                      className="hs-table", id=f"{P}-rows")


def comparison(ctx: Context, study: str, factor: str | None, reference: str | None, split: str | None,
               metric: str, method: str) -> fcmp.Comparisons:
    if not factor:
        raise NotApplicable("this study has no factor to compare arms of")
    info = ctx.info(study)
    mode = info.mode if metric == info.metric else None
    return fcmp.comparison_data(info.trials, info.parameters, factor, metric, reference, split or fa.NONE,
                                method or "t", mode)


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-reference", "options"), Output(f"{P}-reference", "value"),
                  Input(f"{P}-study", "data"), Input(f"{P}-factor", "value"))
    @guarded([OPTIONS, VALUE], "comparisons arms")
    def arms(study: str, factor: str | None) -> tuple[Any, Any]:
        if not factor:
            return [], None
        labels = fcmp.arm_labels(ctx.info(study).finished(), factor)
        return options(labels), fcmp.default_reference(labels)

    @app.callback(Output(f"{P}-graph", "figure"), Output(f"{P}-table", "children"), Output(f"{P}-note", "children"),
                  Output(f"{P}-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-factor", "value"), Input(f"{P}-reference", "value"),
                  Input(f"{P}-split", "value"), Input(f"{P}-metric", "value"), Input(f"{P}-method", "value"),
                  Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, NONE, NONE, MESSAGE], "comparisons")
    def update(study: str, factor: str | None, reference: str | None, split: str | None, metric: str, method: str,
               _n: Any) -> tuple[Any, Any, Any, Any]:
        d = comparison(ctx, study, factor, reference, split, metric, method)
        return fcmp.forest_figure(d), table_component(d), fcmp.comparison_note(d), None

    export_panel.register(app, ctx, P)


PAGE = Page(path="/comparisons", name="Comparisons", prefix=P, layout=layout, register=register)
