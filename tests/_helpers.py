"""Plain helpers shared by the tests (constants and functions, no fixtures): import them as
``from tests._helpers import ROOT``. ``tests`` is a package and pytest puts the repository root on ``sys.path``
(``pythonpath = ["."]`` in pyproject.toml), so this works however pytest is started (from the root, from
another folder with a path to a test file, ``pytest`` or ``python -m pytest``). Fixtures live in conftest.py,
which is pytest's to import, never a test module's."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root
