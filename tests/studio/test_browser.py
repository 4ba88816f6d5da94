"""The studio in a real browser (Debian's Chromium driven by Playwright): load the bundled
sample, draw a polygon by clicks, drag it, save the motion file, generate and download the
noise; undo and redo; a broken upload. Skips only where Chromium or Playwright is missing.

``WARPNOISE_UPDATE_DOCS=1`` makes the drag test save its screenshot as ``docs/studio.png``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.studio._live import running
from warpnoise.io.noisefile import load_noise
from warpnoise.studio import Session

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[2] / "docs"
#: The polygon drawn (first-frame pixels of the 256x192 sample) and the drag.
SQUARE = [(100, 60), (160, 60), (160, 120), (100, 120)]
DRAG = 40
FRAMES = 17

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install playwright); the browser tests need it")
if not Path(CHROMIUM).exists():
    pytest.skip("Chromium is not installed (apt-get install chromium; `make test` does it "
                "where apt-get is available)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    with running(Session(tmp_path / "studio")) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 900},
                                      accept_downloads=True)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url + "/")
        pg.wait_for_function("window.studio && window.studio.ready")
        yield pg
        context.close()
        assert not errors, errors


def at(page: Any, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of first-frame pixel ``(x, y)`` in the editor canvas."""
    box = page.locator("#editor").bounding_box()
    w = page.evaluate("document.getElementById('editor').width")
    s = box["width"] / w
    return box["x"] + (x + 0.5) * s, box["y"] + (y + 0.5) * s


def load_sample(page: Any, frames: int = FRAMES) -> None:
    page.click("#sample")
    page.wait_for_function("window.studio.picture !== null")
    page.fill("#frames", str(frames))
    page.dispatch_event("#frames", "change")


def draw_polygon(page: Any, points: list[tuple[int, int]]) -> None:
    page.click("#mode-draw")
    for x, y in [*points, points[0]]:  # clicking the first point closes it
        page.mouse.click(*at(page, x, y))


def drag(page: Any, start: tuple[float, float], by: tuple[float, float], steps: int = 10) -> None:
    page.mouse.move(*at(page, *start))
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(*at(page, start[0] + by[0] * i / steps, start[1] + by[1] * i / steps))
    page.mouse.up()


def polygon(page: Any) -> list[list[float]]:
    return page.evaluate("studio.motion.layers[0].polygon")


def wait_preview(page: Any) -> None:
    page.wait_for_function("studio.preview && studio.preview.fresh", timeout=300_000)


def test_draw_drag_save_generate_download(page: Any, tmp_path: Path) -> None:
    load_sample(page)
    draw_polygon(page, SQUARE)
    drag(page, (130, 90), (DRAG, 0))  # at frame 0: the key goes to the last frame
    wait_preview(page)
    page.fill("#time", str(FRAMES // 2))
    page.dispatch_event("#time", "input")
    shot = (DOCS if os.environ.get("WARPNOISE_UPDATE_DOCS") else tmp_path) / "studio.png"
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1400, "height": 610})
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with page.expect_download() as info:
        page.click("#save-motion")
    saved = tmp_path / "motion.json"
    info.value.save_as(saved)
    spec = json.loads(saved.read_text())
    assert spec["size"] == [256, 192] and spec["frames"] == FRAMES
    (layer,) = spec["layers"]
    assert layer["polygon"] == [list(p) for p in SQUARE]
    assert layer["keyframes"] == [{"frame": FRAMES - 1, "translate": [DRAG, 0]}]

    page.select_option("#model", "")  # plain noise: 4 channels at full resolution
    page.click("#generate")
    page.wait_for_selector("#downloads a", timeout=300_000)
    assert page.evaluate("document.getElementById('progress').value") == 1
    with page.expect_download() as info:
        page.click("#downloads a >> text=noise.safetensors")
    info.value.save_as(tmp_path / "noise.safetensors")
    noise, meta = load_noise(tmp_path / "noise.safetensors")
    assert noise.shape == (FRAMES, 4, 192, 256)
    x = noise.double().numpy()
    assert np.isfinite(x).all()
    for t in range(FRAMES):  # N(0, 1) in every frame: 196608 samples, SE 0.0023 / 0.0016
        assert abs(x[t].mean()) < 0.015 and abs(x[t].std() - 1) < 0.015, t
    assert json.loads(meta["motion"])["layers"][0]["keyframes"][0]["translate"] == [DRAG, 0]
    # the square's inside (4 px margin) has moved 40 px by the last frame, noise with it
    first, last = x[0, :, 64:117, 104:157], x[-1, :, 64:117, 104 + DRAG:157 + DRAG]
    moved = np.corrcoef(first.ravel(), last.ravel())[0, 1]
    still = np.corrcoef(first.ravel(), x[-1, :, 64:117, 104:157].ravel())[0, 1]
    assert moved > 0.6 and abs(still) < 0.05, (moved, still)


def test_undo_restores_the_previous_polygon_and_redo_reapplies(page: Any) -> None:
    load_sample(page)
    draw_polygon(page, SQUARE)
    before = polygon(page)
    drag(page, SQUARE[1], (12, -8))  # the selected layer's corner: edit a point
    after = polygon(page)
    assert after[1] == [SQUARE[1][0] + 12, SQUARE[1][1] - 8] and after[0] == before[0]
    page.keyboard.press("Control+z")
    assert polygon(page) == before
    page.keyboard.press("Control+Shift+z")
    assert polygon(page) == after
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+y")
    assert polygon(page) == after
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")  # before the polygon was drawn: no layer
    assert page.evaluate("studio.motion.layers.length") == 0
    page.keyboard.press("Control+Shift+z")
    assert polygon(page) == before
    page.keyboard.press("Delete")
    assert page.evaluate("studio.motion.layers.length") == 0


def test_broken_upload_shows_an_error_and_the_page_still_works(page: Any) -> None:
    page.set_input_files("#file", files=[{"name": "photo.png", "mimeType": "image/png",
                                          "buffer": b"\x89PNG\r\n\x1a\n broken"}])
    page.wait_for_function("document.getElementById('message').className === 'error'")
    text = page.inner_text("#message")
    assert "photo.png" in text and "not a readable image" in text
    load_sample(page)
    assert "loaded sample.mp4" in page.inner_text("#message")
    draw_polygon(page, SQUARE)
    wait_preview(page)
    assert page.evaluate("studio.motion.layers.length") == 1
