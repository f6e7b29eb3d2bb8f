"""report.html: self-contained, every plot rendered in a real headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from braintumor import DISCLAIMER

from .conftest import CliRun

FIGURES_PER_SUBSET = 4  # confusion matrix, ROC, reliability, per-class bars


def _html(run: CliRun) -> str:
    assert run.rc == 0, run.stderr
    return (run.out / "report.html").read_text(encoding="utf-8")


def test_report_is_self_contained(leak_eval: CliRun) -> None:
    html = _html(leak_eval)
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//|url\(", html)  # no external request of any kind
    assert DISCLAIMER in html


def test_report_content(leak_eval: CliRun) -> None:
    html = _html(leak_eval)
    assert "whole test set" in html and "leak-free subset" in html
    assert "Figures: whole test set (n = 8)" in html and "Figures: leak-free subset (n = 6)" in html
    assert "Most confident mistakes" in html
    assert "2 test scans leak" in html
    assert '<p class="warn">Note: The leak-free subset keeps fewer than' in html
    rows = (leak_eval.out / "predictions.csv").read_text(encoding="utf-8").splitlines()[1:]
    leaked_mistakes = [r for r in rows if r.endswith(",true") and r.split(",")[1] != r.split(",")[2]]
    assert ("copy in training" in html) == bool(leaked_mistakes)  # leaking mistakes are tagged


def test_report_renders_in_chromium(leak_eval: CliRun, tmp_path: Path, chromium_launch: dict) -> None:
    from playwright.sync_api import sync_playwright

    html_path = leak_eval.out / "report.html"
    n_thumbs = len(re.findall(r"<div class='thumbs'>", _html(leak_eval)))
    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium_launch)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: external.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(html_path.as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            shot = tmp_path / "eval_report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert external == []
    broken = [alt for alt, complete, width in images if not complete or width == 0]
    assert broken == [], f"images that did not load: {broken}"
    figures = [alt for alt, _, _ in images if alt.endswith(("whole test set", "leak-free subset"))]
    assert len(figures) == 2 * FIGURES_PER_SUBSET and n_thumbs == 1
    assert shot.stat().st_size > 50_000  # a real full-page render, not a blank page
