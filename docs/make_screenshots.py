"""Draw the README's two pictures: the web page answering a sample scan, and an evaluation report.

Run from the repository root after installing (`.venv/bin/python docs/make_screenshots.py`): it starts
`braintumor serve` with the shipped model on a free loopback port, uploads a shipped sample scan in
Debian's Chromium (driven by Playwright, never a downloaded browser), evaluates the shipped model on the
shipped samples, and writes docs/images/page.png and docs/images/report.png.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "src" / "braintumor" / "samples"
OUT = ROOT / "docs" / "images"
CHROMIUM = dict(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"], headless=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page_shot(page, url: str) -> None:
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(url)
    page.set_input_files("#file-input", [str(p) for p in sorted(SAMPLES.glob("*/Te-*.jpg"))[:2]])
    page.locator(".card.accepted").nth(1).wait_for(timeout=60_000)
    card = page.locator(".card.accepted").first
    card.locator(".overlay-toggle").check()
    page.wait_for_function(
        "() => { const i = document.querySelector('.card.accepted .scan');"
        " return i.dataset.overlay && i.src === i.dataset.overlay && i.complete; }",
        timeout=60_000,
    )
    page.screenshot(path=str(OUT / "page.png"), full_page=False)


def report_shot(page, report: Path) -> None:
    page.set_viewport_size({"width": 1100, "height": 1100})
    page.goto(report.as_uri())
    page.screenshot(path=str(OUT / "report.png"), full_page=False)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "braintumor.cli", "serve", "--port", str(port)])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            evaluated = Path(tmp) / "eval"
            subprocess.run(
                [sys.executable, "-m", "braintumor.cli", "evaluate", "--data", str(SAMPLES), "--out", str(evaluated)],
                check=True,
            )
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url + "api/v1/health").json().get("model_loaded"):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.5)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(**CHROMIUM)
                page = browser.new_page()
                page_shot(page, url)
                report_shot(page, evaluated / "report.html")
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {OUT / 'page.png'} and {OUT / 'report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
