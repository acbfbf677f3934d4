"""The hyperswitch dashboard (Dash): ``create_app(storage)``; pages in ``dashboards.pages``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dash


def create_app(storage: str | Path = "runs") -> dash.Dash:  # lazy: importing the package stays cheap
    from dashboards.app import create_app as _create

    return _create(storage)
