"""The hyperswitch dashboard (Dash): ``create_app(storage)``; pages in ``dashboards.pages``."""

from __future__ import annotations


def create_app(storage="runs"):  # lazy: importing the package stays cheap
    from dashboards.app import create_app as _create

    return _create(storage)
