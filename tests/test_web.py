"""The chat page end to end in headless Chromium: open it, send two turns, see two images and the layout overlay.

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and Playwright's Python package (no ``playwright
install``: the system browser is used). Skipped only when one is missing *and* SCENEWRIGHT_REQUIRE_BROWSER is not
set; CI sets it, so there the test runs or fails.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import threading
import time

import pytest

from agent.api import Engine
from agent.server import create_app
from tests.chat_fixtures import SCENE

CHROMIUM = os.environ.get("SCENEWRIGHT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_BROWSER = os.path.exists(CHROMIUM) and importlib.util.find_spec("playwright") is not None
if not HAVE_BROWSER and not os.environ.get("SCENEWRIGHT_REQUIRE_BROWSER"):
    pytest.skip(
        "headless Chromium or Playwright is missing (apt-get install -y chromium; pip install playwright)",
        allow_module_level=True,
    )

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PROMPT = 'A black cat sits next to a wooden bench under a street lamp in a park. A sign above the bench says "OPEN".'


@pytest.fixture
def server(tmp_path):
    import uvicorn

    app = create_app(Engine("preview", home=tmp_path / "home"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    # a throw-away profile (--user-data-dir), so nothing from a previous run or the user's browser leaks in
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1200, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.errors = errors
        yield page
        context.close()


def wait_for_count(page, selector: str, n: int, timeout: float = 30.0) -> None:
    """Wait until ``selector`` matches at least ``n`` elements. Polled from here: ``wait_for_function`` evaluates
    its predicate with ``eval`` in the page, which the page's Content-Security-Policy rightly forbids."""
    deadline = time.time() + timeout
    while page.locator(selector).count() < n:
        assert time.time() < deadline, f"fewer than {n} of {selector} after {timeout:g} s"
        page.wait_for_timeout(50)


def images_loaded(page) -> int:
    return page.evaluate(
        "Array.from(document.querySelectorAll('.turn img.result')).filter(i => i.complete && i.naturalWidth > 0).length"
    )


def test_two_turns_with_images_and_overlay(server, page):
    page.goto(server + "/")
    page.fill("#prompt", PROMPT)
    page.fill("#seed", "3")
    page.click("#start")
    wait_for_count(page, ".turn[data-status=done] img.result", 1)

    page.fill("#message", "make the cat bigger")
    page.click("#send")
    wait_for_count(page, ".turn[data-status=done] img.result", 2)
    deadline = time.time() + 10
    while images_loaded(page) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert images_loaded(page) == 2

    # the second turn says what changed and which nodes ran again
    second = page.locator(".turn[data-index='1']")
    assert "resized cat" in second.locator("ul.changes").inner_text()
    assert "scene" in second.locator(".nodes").inner_text()

    # the overlay: one labelled box per object and text, drawn over each image
    boxes = page.locator(".turn[data-index='1'] .overlay .box")
    assert boxes.count() >= 4
    labels = [t.strip() for t in page.locator(".turn[data-index='1'] .overlay .box > span").all_inner_texts()]
    assert "cat" in labels and any("OPEN" in t for t in labels)
    assert boxes.first.is_visible()
    page.uncheck("#overlay-toggle")
    assert not boxes.first.is_visible()
    page.check("#overlay-toggle")
    assert boxes.first.is_visible()

    # undo from the page brings back the first picture, all from the cache
    page.click("#undo")
    wait_for_count(page, ".turn[data-status=done] img.result", 3)
    assert "re-ran: nothing" in page.locator(".turn[data-index='2'] .nodes").inner_text()
    assert page.errors == []


def test_blueprint_session_and_rejected_message(server, page):
    import json

    page.goto(server + "/")
    page.fill("#prompt", json.dumps(SCENE))
    page.click("#start")
    wait_for_count(page, ".turn[data-status=done] img.result", 1)
    page.fill("#message", "make the unicorn pink")
    page.click("#send")
    page.wait_for_selector(".turn[data-index='1'][data-status=rejected]", timeout=30_000)
    assert "unicorn" in page.locator(".turn[data-index='1'] .status").inner_text()
    assert page.locator("#sessions li").count() == 1
    assert page.errors == []
