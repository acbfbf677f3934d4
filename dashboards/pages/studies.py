"""Studies: every study under the storage folder with status, progress, best metric and search-space summary.
Refreshes every 5 s (a running sweep's progress moves on its own); each name links to its parameter study."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, dcc, html

from dashboards._shared import MESSAGE, Context, Page, guarded, message_box, study_href
from hyperswitch.figures.studies import StudyRow, best_text, progress_text, studies_overview

P = "studies"


def layout(ctx: Context, study: str | None) -> Any:
    return html.Div([
        html.H2("Studies"),
        html.Div(f"storage: {ctx.storage}", className="hs-sub"),
        dcc.Interval(id=f"{P}-refresh", interval=5_000),
        html.Div(id=f"{P}-table"),
        html.Div(id=f"{P}-message"),
    ])


def _bar(row: StudyRow) -> Any:
    frac = min(1.0, row.done / row.total) if row.total else 0.0
    return html.Div([html.Span(progress_text(row)),
                     html.Div(html.Div(style={"width": f"{100 * frac:.0f}%"}), className="hs-bar")])


def table(rows: list[StudyRow]) -> Any:
    head = html.Tr([html.Th(h) for h in ("study", "status", "trials", "metric", "best (trial)", "search",
                                         "parameters", "workload / policy", "updated")])
    body = []
    for r in rows:
        if r.error:
            body.append(html.Tr([html.Td(r.name), html.Td("unreadable"),
                                 html.Td(message_box(r.error, "error"), colSpan=7)]))
            continue
        body.append(html.Tr([
            html.Td(dcc.Link(r.name, href=study_href("/parameters", r.name), id={"type": f"{P}-link",
                                                                                    "study": r.name})),
            html.Td(r.status), html.Td(_bar(r)), html.Td(f"{r.metric} ({r.mode})"), html.Td(best_text(r)),
            html.Td(r.search), html.Td(", ".join(r.parameters)), html.Td(f"{r.workload} / {r.policy_type}"),
            html.Td(r.updated[:19].replace("T", " ")),
        ]))
    return html.Table([html.Thead(head), html.Tbody(body)], className="hs-table", id=f"{P}-rows")


def register(app: Any, ctx: Context) -> None:
    @app.callback(Output(f"{P}-table", "children"), Output(f"{P}-message", "children"),
                  Input(f"{P}-refresh", "n_intervals"))
    @guarded([MESSAGE, MESSAGE], "studies page")
    def refresh(_n: int | None) -> tuple[Any, Any]:
        rows = studies_overview(ctx.storage)
        if not rows:
            return None, message_box(f"No study under {ctx.storage} yet: run `hyperswitch sweep SPACE` first.")
        running = sum(r.status == "running" for r in rows)
        note = f"{len(rows)} studies" + (f", {running} running (refreshing every 5 s)" if running else "")
        return table(rows), html.Div(note, className="hs-sub")


PAGE = Page(path="/", name="Studies", prefix=P, layout=layout, register=register, study_page=False)
