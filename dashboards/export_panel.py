"""The "export best policy" button of the study pages: ``hyperswitch.export.export_study`` writes the policy
file and the page shows its path and contents. Absent (no button) where that module is not available."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, State, html


def export_available() -> bool:
    try:
        from hyperswitch.export import export_study  # noqa: F401
    except ImportError:
        return False
    return True


def panel(prefix: str) -> Any:
    if not export_available():
        return None
    return html.Div([
        html.Button("Export best policy", id=f"{prefix}-export-button", n_clicks=0),
        html.Div(id=f"{prefix}-export-output"),
    ], className="hs-export")


def register(app: Any, ctx: Any, prefix: str) -> None:
    if not export_available():
        return
    from dashboards._shared import MESSAGE, guarded

    @app.callback(Output(f"{prefix}-export-output", "children"), Input(f"{prefix}-export-button", "n_clicks"),
                  State(f"{prefix}-study", "data"), prevent_initial_call=True)
    @guarded([MESSAGE], f"export ({prefix})")
    def export(n: int, study: str) -> Any:
        from hyperswitch.export import export_study

        if not n:
            return None
        path = ctx.study_path(study)
        results = export_study(path, storage=str(ctx.storage), force=True)
        return html.Div([html.Div([html.Div(f"wrote {r.path}"), html.Pre(r.text)]) for r in results])
