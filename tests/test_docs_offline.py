"""``/docs`` renders Swagger UI with the network cut off: its files come from this server (issue 13, item 11).
Headless Chromium with every request outside 127.0.0.1 aborted; skipped where the browser is missing."""

from __future__ import annotations

import pytest

from tests.test_web import HAVE_BROWSER, page, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(not HAVE_BROWSER, reason="headless Chromium or Playwright is missing")


def test_docs_render_offline(server, page, tmp_path):  # noqa: F811
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(server):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_local)
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)  # the operations, rendered by Swagger UI
    assert "/api/sessions" in page.inner_text("body")
    page.screenshot(path=str(tmp_path / "docs.png"))
    assert outside == [], outside
    assert not page.errors, page.errors
