"""Open an exported study in optuna-dashboard (served on 127.0.0.1) and save a screenshot of its page.

    . .venv/bin/activate
    hyperswitch export-optuna quickstart --to sqlite:///runs/optuna.db
    python scripts/optuna_dashboard_screenshot.py sqlite:///runs/optuna.db quickstart docs/img/optuna_dashboard.png

Headless Chromium (Debian's /usr/bin/chromium) through Playwright, as the dashboard's browser tests use.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright


def main(storage: str, study_name: str, out: str) -> int:
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or "optuna-dashboard"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, storage, "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/api/studies", timeout=2) as r:
                    studies = json.loads(r.read())["study_summaries"]
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("optuna-dashboard did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        ids = [s["study_id"] for s in studies if s["study_name"] == study_name]
        if not ids:
            print(f"no study {study_name!r} in {storage}", file=sys.stderr)
            return 1
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/dashboard/studies/{ids[0]}", wait_until="networkidle")
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            page.wait_for_timeout(1500)  # plotly's transitions settle
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=out, full_page=True)
            browser.close()
        print(f"wrote {out}: optuna-dashboard's page of {study_name!r} ({base}/dashboard/studies/{ids[0]})")
        return 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
