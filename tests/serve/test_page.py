"""The web page in real headless Chromium: upload a scan, see label, bars and overlay; upload a photo, see refusal.

Screenshots are kept under the test's tmp folder (pytest keeps the last three runs) for people to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def browser_page(server, chromium_launch: dict):
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(**chromium_launch)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        yield page, errors
        browser.close()


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"page_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_scan_gets_label_bars_and_overlay(browser_page, samples_dir: Path, tmp_path: Path) -> None:
    page, errors = browser_page
    assert page.locator("#disclaimer").is_visible()
    assert "Research use only" in page.locator("#disclaimer").inner_text()
    page.locator("#model-info", has_text="simple_cnn").wait_for(timeout=30_000)
    scan = sorted(samples_dir.glob("pituitary/*.jpg"))[0]
    page.set_input_files("#file-input", str(scan))
    card = page.locator(".card.accepted").first
    card.wait_for(timeout=30_000)
    verdict = card.locator(".verdict").inner_text()
    assert any(c in verdict for c in ("glioma", "meningioma", "notumor", "pituitary")) and "confidence" in verdict
    assert card.locator(".bar-row").count() == 4
    label = verdict.split(" — ")[0]
    assert card.locator(".caveat").is_visible()
    assert card.locator(".caveat").inner_text() == f"Caution: test caveat for {label}"
    _shot(page, tmp_path, "predict")

    card.locator(".overlay-toggle").check()
    page.wait_for_function(
        "() => { const img = document.querySelector('.card.accepted .scan');"
        " return img.dataset.overlay && img.src === img.dataset.overlay && img.complete && img.naturalWidth > 0; }",
        timeout=30_000,
    )
    size = page.evaluate(
        "() => { const i = document.querySelector('.card.accepted .scan'); return [i.naturalWidth, i.naturalHeight]; }"
    )
    assert size == [512, 512]  # the overlay comes back at the scan's own size
    assert card.locator(".legend").is_visible() and card.locator(".scan").get_attribute("alt").startswith("LayerCAM")
    assert card.locator(".card-disclaimer").is_visible()  # on the card itself, for screenshots and printouts
    _shot(page, tmp_path, "overlay")
    card.locator(".overlay-toggle").uncheck()
    assert card.locator(".scan").get_attribute("alt") == f"Scan {scan.name}" and card.locator(".legend").is_hidden()
    assert "1 predicted, 0 refused, 0 without an answer" in page.locator("#status").inner_text()
    assert page.locator("#disclaimer").is_visible()
    assert errors == []  # no script errors, no CSP violations


def _forget_aborted_loads(errors: list[str]) -> None:
    # the tests below abort requests on purpose; Chromium logs each as a console error
    errors[:] = [e for e in errors if "net::ERR_FAILED" not in e]


def test_an_overlay_that_failed_once_can_be_drawn_later(browser_page, samples_dir: Path) -> None:
    page, errors = browser_page
    scan = sorted(samples_dir.glob("glioma/*.jpg"))[1]
    page.set_input_files("#file-input", str(scan))
    card = page.locator(".card.accepted", has_text=scan.name)
    card.wait_for(timeout=30_000)
    distance = card.locator(".ood").inner_text()
    assert "Distance to the training scans" in distance and "are refused" in distance  # the threshold is named
    page.route("**/api/v1/explain*", lambda route: route.abort())  # the network fails once
    # click, not check(): the page unticks the box when the overlay fails, and an aborted request fails so
    # fast that check()'s own look at the box can come after that (seen once in CI).
    card.locator(".overlay-toggle").click()
    card.locator(".overlay-error").wait_for(timeout=30_000)
    assert "Cannot reach the server" in card.locator(".overlay-error").inner_text()
    assert not card.locator(".overlay-toggle").is_checked()  # unticked again, so it can be tried later
    page.unroute("**/api/v1/explain*")
    card.locator(".overlay-toggle").check()
    card.locator(".legend").wait_for(timeout=30_000)
    assert card.locator(".overlay-error").is_hidden() and card.locator(".ood").inner_text() == distance
    _forget_aborted_loads(errors)
    assert errors == []


def test_server_out_of_reach_is_said_plainly(browser_page, samples_dir: Path) -> None:
    page, errors = browser_page
    page.route("**/api/v1/predict", lambda route: route.abort())
    try:
        scan = sorted(samples_dir.glob("notumor/*.jpg"))[0]
        page.set_input_files("#file-input", str(scan))
        card = page.locator(".card.refused", has_text=scan.name)
        card.wait_for(timeout=30_000)
        assert "Cannot reach the server" in card.locator(".refusal").inner_text()
        assert "0 predicted, 0 refused, 1 without an answer" in page.locator("#status").inner_text()
    finally:
        page.unroute("**/api/v1/predict")
    _forget_aborted_loads(errors)
    assert errors == []


def test_token_form_checks_the_token_and_submits_with_enter(browser_page, serve_factory, tiny_checkpoint, samples_dir):
    from braintumor.serve import ServeSettings

    token = "page-token-0123456789abcdef"
    server = serve_factory(ServeSettings(model=str(tiny_checkpoint), api_token=token))
    page = browser_page[0].context.browser.new_page()  # a second tab: one Playwright instance per thread
    try:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        page.locator("#auth").wait_for()  # /model answered 401: the page asks, with the field focused
        assert page.evaluate("document.activeElement.id") == "token"
        page.fill("#token", "\u201c" + token + "\u201d")  # pasted with smart quotes: no header can carry it
        page.press("#token", "Enter")
        assert "plain ASCII" in page.locator("#token-error").inner_text() and page.locator("#auth").is_visible()
        page.fill("#token", "wrong-token-0123456789")
        page.press("#token", "Enter")
        page.locator("#token-error", has_text="not accepted").wait_for(timeout=30_000)
        page.fill("#token", token)
        page.press("#token", "Enter")  # Enter submits the form
        # a locator, not wait_for_function("..."): polling a string needs eval, which the page's CSP forbids
        page.locator("#model-info", has_text="simple_cnn").wait_for(timeout=30_000)
        assert page.locator("#auth").is_hidden()
        page.set_input_files("#file-input", str(sorted(samples_dir.glob("glioma/*.jpg"))[0]))
        page.locator(".card.accepted").wait_for(timeout=30_000)
    finally:
        page.close()
    assert errors == []


def test_photo_is_refused_with_a_clear_message(browser_page, photo_jpeg: bytes, tmp_path: Path) -> None:
    page, errors = browser_page
    photo = tmp_path / "holiday_cat.jpg"
    photo.write_bytes(photo_jpeg)
    page.set_input_files("#file-input", str(photo))
    refused = page.locator(".card.refused", has_text="holiday_cat.jpg")
    refused.wait_for(timeout=30_000)
    message = refused.locator(".refusal").inner_text()
    assert "Refused" in message and "not a brain MRI scan" in message
    assert refused.locator(".bar-row").count() == 0 and refused.locator(".toggle").is_hidden()
    _shot(page, tmp_path, "refused")
    assert page.locator("#disclaimer").is_visible()
    assert errors == []


def test_grayscale_photo_is_refused_by_the_ood_check(browser_page, photo_jpeg: bytes, tmp_path: Path) -> None:
    import io

    from PIL import Image

    page, _ = browser_page
    gray = tmp_path / "gray_cat.png"
    Image.open(io.BytesIO(photo_jpeg)).convert("L").save(gray)
    page.set_input_files("#file-input", str(gray))
    refused = page.locator(".card.refused", has_text="gray_cat.png")
    refused.wait_for(timeout=30_000)
    assert "out-of-distribution" in refused.locator(".refusal").inner_text()


def test_unreadable_file_says_why(browser_page, tmp_path: Path) -> None:
    page, _ = browser_page
    bad = tmp_path / "report.jpg"
    bad.write_text("not an image")
    page.set_input_files("#file-input", str(bad))
    refused = page.locator(".card.refused", has_text="report.jpg")
    refused.wait_for(timeout=30_000)
    assert "Cannot read this file" in refused.locator(".refusal").inner_text()
    assert refused.locator(".no-preview").is_visible()
