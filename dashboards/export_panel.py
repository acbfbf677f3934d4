"""The "Export policy" panel of the study pages: the same export as ``hyperswitch export`` (choose by the mean over
seeds or the single best trial, by the study's metric), written under the dashboard's policies folder
(``hyperswitch dashboard --policies DIR``, default ./policies as for ``hyperswitch export``); the page
shows the file's path and contents. An existing file is shown, not overwritten, unless "overwrite" is ticked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import Input, Output, State, dcc, html


def panel(prefix: str) -> Any:
    return html.Details([
        html.Summary("Export policy"),
        html.Div([
            dcc.RadioItems(id=f"{prefix}-export-select", value="mean", inline=True,
                           options=[{"label": "best mean over seeds", "value": "mean"},
                                    {"label": "best single trial", "value": "best"}]),
            dcc.Checklist(id=f"{prefix}-export-force", options=[{"label": "overwrite", "value": "force"}], value=[],
                          inline=True),
            html.Button("Export", id=f"{prefix}-export-button", n_clicks=0),
        ], className="hs-controls"),
        dcc.Loading(html.Div(id=f"{prefix}-export-output")),
    ], className="hs-export", id=f"{prefix}-export")


def register(app: Any, ctx: Any, prefix: str) -> None:
    from dashboards._shared import MESSAGE, guarded, message_box

    @app.callback(Output(f"{prefix}-export-output", "children"), Input(f"{prefix}-export-button", "n_clicks"),
                  State(f"{prefix}-study", "data"), State(f"{prefix}-export-select", "value"),
                  State(f"{prefix}-export-force", "value"), prevent_initial_call=True)
    @guarded([MESSAGE], f"export ({prefix})")
    def export(n: int, study: str, select: str, force: list[str] | None) -> Any:
        from hyperswitch.errors import ConfigError
        from hyperswitch.export import export_study

        if not n:
            return None
        path = ctx.study_path(study)
        folder = ctx.policies
        try:
            results = export_study(path, select=select or "mean", output=str(folder) + "/",
                                   force="force" in (force or []))
        except ConfigError as exc:
            existing = Path(str(exc.value)) if exc.rule.startswith("exists") else None
            if existing is not None and existing.is_file():
                return html.Div([message_box(f"{existing.resolve()} exists (below); tick 'overwrite' to replace it.",
                                             "info"),
                                 html.Pre(existing.read_text(encoding="utf-8"), className="hs-export-text")])
            return message_box(f"Not exported: {exc}", "error")
        out: list[Any] = []
        for r in results:
            out.append(html.Div(f"wrote {r.path.resolve()}", className="hs-export-path"))
            out.extend(message_box(f"note: {note}", "info") for note in r.notes)
            out.append(html.Pre(r.text, className="hs-export-text"))
        return html.Div(out)
