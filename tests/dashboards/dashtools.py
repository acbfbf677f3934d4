"""Helpers for the browser tests: a free port, the real dashboard server as a subprocess, headless Chromium
(Debian's, driven by Playwright), and reading what Plotly actually drew in the page."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard_server(storage: Path, log_path: Path, timeout_s: float = 90, extra: tuple[str, ...] = ()):
    """``hyperswitch dashboard --storage STORAGE --port P [EXTRA...]`` as a real subprocess; yields the base URL."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "hyperswitch.cli", "dashboard", "--storage", str(storage),
                                 "--port", str(port), *extra], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + "/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dashboard did not answer within {timeout_s} s: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


FIG_JS = """id => {
  const gd = document.querySelector('#' + id + ' .js-plotly-plot');
  if (!gd || !gd._fullLayout || !gd.data) return null;
  const L = gd._fullLayout, t = (a) => (a && a.title && a.title.text) || '';
  return {types: gd.data.map(d => d.type), names: gd.data.map(d => d.name || ''), n: gd.data.length,
          title: t(L), subtitle: (L.title && L.title.subtitle && L.title.subtitle.text) || '',
          x: t(L.xaxis), y: t(L.yaxis), text: (gd.querySelector('.infolayer') || {}).textContent || '',
          annotations: (L.annotations || []).map(a => a.text),
          cells: gd.querySelectorAll('.heatmaplayer text').length};
}"""


def figure(page, graph_id: str) -> dict | None:
    """What Plotly drew in ``#graph_id``: trace types and names, titles, axis titles, heatmap cell labels."""
    return page.evaluate(FIG_JS, graph_id)


def wait_figure(page, graph_id: str, js_condition: str, timeout_s: float = 30) -> dict:
    """Wait until ``js_condition`` (an expression over ``f``, the object :func:`figure` returns) holds."""
    page.wait_for_function(f"id => {{ const f = ({FIG_JS})(id); return !!f && ({js_condition}); }}", arg=graph_id,
                           timeout=timeout_s * 1000)
    return figure(page, graph_id)


def pick(page, dropdown_id: str, label: str) -> None:
    """Choose ``label`` in a Dash dropdown (its options open in a popover with role "option")."""
    page.click(f"#{dropdown_id}")
    page.get_by_role("option", name=label, exact=True).click()
    page.keyboard.press("Escape")
