"""``/schema`` in a real browser (Debian's chromium, through Playwright) with every request
outside the server refused: the page must load all it needs from Licentia and list the
operations."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser():
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.parametrize("page_path", ["/schema", "/schema/swagger"])
def test_api_docs_render_with_no_outside_network(live_server_factory, browser, page_path) -> None:
    server = live_server_factory()
    own = urlsplit(server.base_url).netloc
    outside: list[str] = []
    failed: list[str] = []

    def route(request_route) -> None:
        if urlsplit(request_route.request.url).netloc == own:
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    page = browser.new_page()
    page.route("**/*", route)
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(server.base_url + page_path)
    # Swagger UI renders one block per operation; wait until they are there.
    page.wait_for_selector(".opblock", timeout=60_000)
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/licenses/validate" in {text.strip() for text in summaries}
    assert len(summaries) >= 45, summaries
    assert page.locator(".opblock-tag").count() >= 8
    assert outside == [], outside
    assert failed == [], failed
