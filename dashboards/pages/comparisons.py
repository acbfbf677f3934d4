"""Comparisons: every arm of one factor of a study (``variant``, ``optimizer``, the policy, the corrector on/off,
...) against a reference arm, paired by seed (issue 16). A forest plot of the mean paired difference with its 95%
interval per arm, and a table: runs, failure rate (diverged or no value, Wilson interval), mean ± s.d. over the
runs that did not fail, the paired difference with its interval, pairs and the runs that are not pairs (and why),
the difference of the failure rates (Newcombe) and a verdict helper. "tune over" puts each arm at its own best
cell of the chosen parameters (``lr_scale`` x ``damping``) and pairs those cells' runs by seed; "held-out seeds"
chooses the cells on the first half of the seeds and measures on the other half. Numbers from
:mod:`hyperswitch.figures.comparisons`."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, State, dcc, html

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
HOLDOUT = "holdout"


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
    tunable = fcmp.tune_choices(info.trials, info.parameters, factor) if factor else []
    return html.Div([
        *study_page_top(P, "Comparisons", info),
        note,
        html.Div([
            control("arms: values of", dropdown(f"{P}-factor", names, factor, dict(factors)), "300px"),
            control("reference arm", dropdown(f"{P}-reference", arms, fcmp.default_reference(arms)), "260px"),
            control("separately per", dropdown(f"{P}-split", [fa.NONE, *names], fa.default_split(names, factor))),
            control("metric", dropdown(f"{P}-metric", metrics, default, labels), "260px"),
            control("95% interval", radio(f"{P}-method", list(PAIRED_METHODS), "t", METHOD_LABELS)),
            control("tune over (each arm at its best cell)", dropdown(f"{P}-tune", tunable, [], multi=True,
                                                                      clearable=True), "300px"),
            control("seeds", dcc.Checklist(id=f"{P}-holdout", options=[
                {"label": "held-out seeds (choose on the first half, measure on the other)", "value": HOLDOUT}],
                value=[], className="hs-radio")),
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
               metric: str, method: str, tune: list[str] | None = None, holdout: bool = False) -> fcmp.Comparisons:
    if not factor:
        raise NotApplicable("this study has no factor to compare arms of")
    info = ctx.info(study)
    mode = info.mode if metric == info.metric else None
    choices = fcmp.tune_choices(info.trials, info.parameters, factor)
    tune = [p for p in tune or [] if p in choices]  # a name left from another factor's choices
    split = split or fa.NONE
    if holdout and not tune:
        raise NotApplicable("held-out seeds apply to a tuned comparison: choose the parameters to tune over")
    if split in tune:
        raise NotApplicable(f"{split} is both the split and a parameter to tune over: choose one")
    return fcmp.comparison_data(info.trials, info.parameters, factor, metric, reference, split, method or "t", mode,
                                tune, holdout)


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-reference", "options"), Output(f"{P}-reference", "value"),
                  Input(f"{P}-study", "data"), Input(f"{P}-factor", "value"))
    @guarded([OPTIONS, VALUE], "comparisons arms")
    def arms(study: str, factor: str | None) -> tuple[Any, Any]:
        if not factor:
            return [], None
        labels = fcmp.arm_labels(ctx.info(study).finished(), factor)
        return options(labels), fcmp.default_reference(labels)

    @app.callback(Output(f"{P}-tune", "options"), Output(f"{P}-tune", "value"),
                  Input(f"{P}-study", "data"), Input(f"{P}-factor", "value"), State(f"{P}-tune", "value"))
    @guarded([OPTIONS, VALUE], "comparisons tune over")
    def tunable(study: str, factor: str | None, chosen: list[str] | None) -> tuple[Any, Any]:
        if not factor:
            return [], []
        info = ctx.info(study)
        choices = fcmp.tune_choices(info.trials, info.parameters, factor)
        return options(choices), [p for p in chosen or [] if p in choices]

    @app.callback(Output(f"{P}-graph", "figure"), Output(f"{P}-table", "children"), Output(f"{P}-note", "children"),
                  Output(f"{P}-message", "children"),
                  Input(f"{P}-study", "data"), Input(f"{P}-factor", "value"), Input(f"{P}-reference", "value"),
                  Input(f"{P}-split", "value"), Input(f"{P}-metric", "value"), Input(f"{P}-method", "value"),
                  Input(f"{P}-tune", "value"), Input(f"{P}-holdout", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, NONE, NONE, MESSAGE], "comparisons")
    def update(study: str, factor: str | None, reference: str | None, split: str | None, metric: str, method: str,
               tune: list[str] | None, holdout: list[str] | None, _n: Any) -> tuple[Any, Any, Any, Any]:
        d = comparison(ctx, study, factor, reference, split, metric, method, tune, HOLDOUT in (holdout or []))
        return fcmp.forest_figure(d), table_component(d), fcmp.comparison_note(d), None

    export_panel.register(app, ctx, P)


PAGE = Page(path="/comparisons", name="Comparisons", prefix=P, layout=layout, register=register)
