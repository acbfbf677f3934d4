"""The Dash app: a thin shell. A navigation bar built from the page registry, a study picker, and a router that
renders the page of the URL (``/parameters?study=NAME``). Each page module owns its layout and callbacks, its
component ids prefixed by its name; figures come from ``hyperswitch.figures``.

Run it with ``hyperswitch dashboard [--storage DIR] [--host 127.0.0.1] [--port 8050]``, or
``python -m dashboards.app --storage runs`` from a checkout.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import dash
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboards._shared import Context, Page, query_study, run_guarded, study_href
from dashboards.pages import PAGES
from hyperswitch.figures.data import activity
from hyperswitch.results.fs import ObjectPath, study_path

log = logging.getLogger("hyperswitch.dashboard")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; }
.hs-top { display: flex; align-items: center; gap: 18px; padding: 8px 18px; background: #1f2a36; color: #fff;
          flex-wrap: wrap; }
.hs-brand { font-weight: 700; font-size: 18px; margin-right: 8px; }
.hs-nav a { color: #cfe0f3; margin-right: 14px; text-decoration: none; font-size: 14px; }
.hs-nav a.hs-active { color: #fff; border-bottom: 2px solid #7fb8ff; }
.hs-studypick { min-width: 260px; color: #222; }
.hs-main { padding: 10px 22px 40px; }
.hs-main h2 { margin: 8px 0 2px; font-size: 21px; }
.hs-sub { color: #666; font-size: 13px; margin-bottom: 8px; }
.hs-controls { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-end; margin: 8px 0 4px; }
.hs-control { display: flex; flex-direction: column; gap: 3px; }
.hs-label { font-size: 12px; color: #555; font-weight: 600; }
.hs-radio label { margin-right: 10px; font-size: 13px; }
.hs-message { padding: 8px 12px; margin: 8px 0; border-radius: 4px; font-size: 14px; }
.hs-info { background: #eef4fb; border: 1px solid #c6d9ef; }
.hs-error { background: #fdecea; border: 1px solid #f5c2bd; color: #7a1f16; }
.hs-table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
.hs-table th, .hs-table td { border-bottom: 1px solid #e3e3e3; padding: 5px 9px; text-align: left;
                             vertical-align: top; }
.hs-table th { background: #f4f6f8; }
.hs-row { display: flex; gap: 16px; flex-wrap: wrap; }
.hs-row > div { flex: 1 1 520px; min-width: 420px; }
.hs-bar { background: #e6e6e6; height: 6px; width: 120px; border-radius: 3px; margin-top: 3px; }
.hs-bar > div { background: #3c8dde; height: 6px; border-radius: 3px; }
.hs-export pre { background: #f6f8fa; padding: 8px; font-size: 12px; max-height: 320px; overflow: auto; }
"""

INDEX = """<!DOCTYPE html>
<html>
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
        <style>""" + CSS + """</style>
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def _nav(pages: list[Page], current: str, study: str | None) -> list[Any]:
    return [dcc.Link(p.name, href=study_href(p.path, study) if p.study_page else p.path,
                     className="hs-active" if p.path == current else "", id=f"app-nav-{p.prefix}")
            for p in pages]


def create_app(storage: str | Path | ObjectPath = "runs", pages: list[Page] | None = None, warm: bool = True,
               policies: str | Path = "policies") -> dash.Dash:
    """The dashboard of the studies under ``storage`` (read at every request: new studies appear). ``warm``
    imports the figures' heavy dependencies now rather than at the first page."""
    if warm:
        from hyperswitch.figures.data import warm_up

        warm_up()
    ctx = Context(study_path(storage), Path(policies).resolve())  # a folder, or a storage URI (s3://...)
    pages = list(pages or PAGES)
    by_path = {p.path: p for p in pages}
    # update_title=None: Dash documents None ("" too) as "leave the title alone" but annotates it str
    app = dash.Dash(__name__, title="hyperswitch", update_title=None, use_pages=False,  # type: ignore[arg-type]
                    suppress_callback_exceptions=True, serve_locally=True, assets_folder=str(
                        Path(__file__).with_name("assets")), include_assets_files=False)
    app.index_string = INDEX
    app.layout = html.Div([
        dcc.Location(id="app-url", refresh="callback-nav"),
        html.Div([
            html.Span("hyperswitch", className="hs-brand"),
            html.Nav(id="app-nav", className="hs-nav", children=_nav(pages, "/", None)),
            html.Div(dcc.Dropdown(id="app-study", options=[], value=None, placeholder="study...",
                                  clearable=False), className="hs-studypick"),
        ], className="hs-top"),
        html.Main(id="app-page", className="hs-main"),
        # A hidden graph added 1.5 s after the first page shows: the browser fetches and compiles plotly.js
        # (4.8 MB) while the user reads the studies table, rather than when they open a study.
        dcc.Interval(id="app-preload-timer", interval=1500, max_intervals=1),
        html.Div(id="app-preload", style={"display": "none"}),
    ])

    @app.callback(Output("app-preload", "children"), Input("app-preload-timer", "n_intervals"),
                  prevent_initial_call=True)
    def preload_plotly(_n: int) -> Any:
        return dcc.Graph(id="app-plotly-preload", figure={"data": [], "layout": {}})

    @app.callback(Output("app-page", "children"), Output("app-nav", "children"), Output("app-study", "options"),
                  Output("app-study", "value"), Input("app-url", "pathname"), Input("app-url", "search"))
    def route(pathname: str | None, search: str | None) -> tuple[Any, Any, Any, Any]:
        activity(True)
        try:
            return _route(pathname, search)
        finally:
            activity(False)

    def _route(pathname: str | None, search: str | None) -> tuple[Any, Any, Any, Any]:
        names = run_guarded(ctx.study_names, "study list") or []
        names = names if isinstance(names, list) else []
        study = query_study(search)
        page = by_path.get(pathname or "/") or by_path.get("/" + (pathname or "").strip("/").split("/")[-1])
        if page is None:
            content: Any = html.Div([html.H2("Page not found"),
                                     html.P(f"There is no page {pathname!r}; pick one above.")])
        else:
            if page.study_page and study is None and names:
                study = names[0]
            if page.study_page and study is None:
                content = html.Div([html.H2(page.name), html.P(f"No study under {ctx.storage} yet: run "
                                                               "`hyperswitch sweep SPACE` first.")])
            else:
                content = run_guarded(lambda: page.layout(ctx, study), page.name)
        current = page.path if page else ""
        return content, _nav(pages, current, study), [{"label": n, "value": n} for n in names], study

    @app.callback(Output("app-url", "search"), Input("app-study", "value"), State("app-url", "search"),
                  prevent_initial_call=True)
    def pick_study(study: str | None, search: str | None) -> str:
        if not study or query_study(search) == study:
            raise PreventUpdate
        return f"?study={study}"

    for page in pages:
        page.register(app, ctx)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dashboards.app", description="Serve the hyperswitch dashboard.")
    p.add_argument("--storage", default="runs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8050)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    create_app(args.storage).run(host=args.host, port=args.port, debug=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
