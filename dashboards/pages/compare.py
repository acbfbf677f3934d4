"""Compare studies: two or more studies of the storage on one metric. Per study the distribution of its
configurations' means (box and points) and its best-so-far curve, overlaid; a table of each study's
configurations, best mean ± s.d. over seeds and that configuration. Studies without the metric are named in a
note."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from dash import Input, Output, State, dash_table, dcc, html

from dashboards._shared import (
    FIGURE,
    MESSAGE,
    OPTIONS,
    PARAM_METRICS,
    VALUE,
    Context,
    Page,
    control,
    dropdown,
    graph,
    guarded,
    message_box,
)
from hyperswitch.figures import compare as fc
from hyperswitch.figures._common import metric_label
from hyperswitch.figures.data import NotApplicable
from hyperswitch.results.cache import StudyReadError

P = "compare"


def layout(ctx: Context, study: str) -> Any:
    names = ctx.study_names()
    return html.Div([
        html.H2("Compare studies"),
        html.Div(f"storage: {ctx.storage} \u00b7 a configuration's value is the mean over its finished seeds",
                 className="hs-sub"),
        dcc.Interval(id=f"{P}-refresh", interval=10_000, disabled=True),
        html.Div([
            control("studies", dropdown(f"{P}-studies", names, [study] if study in names else names[:1], multi=True,
                                        clearable=True), "460px"),
            control("metric", dropdown(f"{P}-metric", [], None), "300px"),
        ], className="hs-controls"),
        html.Div(id=f"{P}-message"),
        html.Div(id=f"{P}-table"),
        html.Div([html.Div(graph(f"{P}-dist", 420)), html.Div(graph(f"{P}-best", 420))], className="hs-row"),
    ])


def metric_options(ctx: Context, names: list[str]) -> tuple[list[dict[str, str]], str | None]:
    """The metrics with values in the picked studies (each labelled with how many of them have values when not all
    do) and the first study's own metric as the default."""
    infos = [ctx.info(n) for n in names]
    have: dict[str, int] = {}
    for info in infos:
        for m in dict.fromkeys([info.metric, *PARAM_METRICS]):
            if m in info.trials.columns and np.isfinite(pd.to_numeric(info.trials[m], errors="coerce")
                                                        .to_numpy(dtype=float, na_value=np.nan)).any():
                have[m] = have.get(m, 0) + 1
    order = [*dict.fromkeys([*(i.metric for i in infos), *PARAM_METRICS])]
    opts = [{"label": metric_label(m) + ("" if have[m] == len(infos) else f" ({have[m]} of {len(infos)} studies)"),
             "value": m} for m in order if m in have]
    values = [o["value"] for o in opts]
    default = infos[0].metric if infos and infos[0].metric in values else next(iter(values), None)
    return opts, default


def comparison(ctx: Context, names: list[str], metric: str) -> fc.Comparison:
    infos = {n: ctx.info(n) for n in names}
    mode = fc.comparison_mode(metric, {i.metric: i.mode for i in infos.values()})
    return fc.compare_data([(n, i.trials) for n, i in infos.items()], metric, mode)


def table_component(d: fc.Comparison) -> Any:
    rows = fc.comparison_rows(d)
    cols = [{"name": k, "id": k} for k in rows[0]]
    cols[-1]["name"] = "best config_id"
    return dash_table.DataTable(  # type: ignore[attr-defined]  # dash_table's names come from a star import
        id=f"{P}-rows", columns=cols, data=rows, sort_action="native", style_table={"overflowX": "auto",
                                                                                  "maxWidth": "900px"},
        style_cell={"fontFamily": "system-ui, sans-serif", "fontSize": 13, "padding": "4px 8px",
                    "textAlign": "left"},
        style_header={"fontWeight": 600, "backgroundColor": "#f4f6f8"})


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-metric", "options"), Output(f"{P}-metric", "value"), Input(f"{P}-studies", "value"),
                  State(f"{P}-metric", "value"))
    @guarded([OPTIONS, VALUE], "compare: metrics")
    def metrics(names: list[str] | None, current: str | None) -> tuple[Any, Any]:
        opts, default = metric_options(ctx, list(names or []))
        values = [o["value"] for o in opts]
        return opts, current if current in values else default

    @app.callback(Output(f"{P}-refresh", "disabled"), Input(f"{P}-studies", "value"))
    def refresh_while_running(names: list[str] | None) -> bool:
        """Redraw every 10 s while a picked study's sweep runs."""
        try:
            return not any(ctx.info(n).status == "running" for n in names or [])
        except (NotApplicable, StudyReadError):  # the figures' callback says what is wrong
            return True

    @app.callback(Output(f"{P}-dist", "figure"), Output(f"{P}-best", "figure"), Output(f"{P}-table", "children"),
                  Output(f"{P}-message", "children"),
                  Input(f"{P}-studies", "value"), Input(f"{P}-metric", "value"), Input(f"{P}-refresh", "n_intervals"))
    @guarded([FIGURE, FIGURE, MESSAGE, MESSAGE], "compare studies")
    def update(names: list[str] | None, metric: str | None, _n: Any) -> tuple[Any, Any, Any, Any]:
        names = [n for n in (names or []) if isinstance(n, str)]
        if not names:
            raise NotApplicable("pick one or more studies to compare")
        if not metric:
            raise NotApplicable("pick a metric")
        d = comparison(ctx, names, metric)
        note = fc.missing_note(d)
        if len(names) == 1:
            extra = "Pick more studies above to compare them."
            note = f"{note} {extra}" if note else extra
        return fc.distribution_figure(d), fc.best_so_far_figure(d), table_component(d), message_box(note)


PAGE = Page(path="/compare", name="Compare studies", prefix=P, layout=layout, register=register)
