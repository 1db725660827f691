"""The browser suite: Chromium from Debian (``/usr/bin/chromium``) driven by Playwright,
against a real ``licentia serve`` subprocess on the test database."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import LiveServer, TestDatabase, make_api_key, server_env, start_server, stop_server

from server.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ASSETS = Path(__file__).parent / "assets"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def browser(database: TestDatabase) -> Iterator[Any]:
    """One Chromium for this module. Playwright's synchronous API keeps an event loop
    running in this thread while it is open, so it must close before any other module's
    test calls ``asyncio.run`` (module scope, never session), and the database (built with
    ``asyncio.run``) comes first."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


@pytest.fixture
def live(settings: Settings, signing_key: str, tmp_path: Path) -> Iterator[LiveServer]:
    """One ``licentia serve`` for the test (webhooks may go to a receiver on this machine)."""
    env = server_env(
        settings, LICENTIA_WEBHOOK_ALLOW_INSECURE="1", LICENTIA_WEBHOOK_ALLOW_PRIVATE="1"
    )
    server = start_server(env, tmp_path / "server.log")
    yield server
    stop_server(server)


@pytest.fixture
def api(live: LiveServer, settings: Settings) -> Iterator[httpx.Client]:
    """The admin API of the live server, with an all-scopes key (the vendor's billing
    system, or a product calling the licensing API)."""
    key = make_api_key(settings, ["*"])
    with httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=20
    ) as client:
        yield client


@pytest.fixture
def context(browser: Any, live: LiveServer) -> Iterator[Any]:
    """A fresh browser profile; every dialog (the confirmations) is accepted. Any script
    error or Content-Security-Policy refusal on any page fails the test."""
    ctx = browser.new_context(base_url=live.base_url, viewport={"width": 1200, "height": 800})
    errors: list[str] = []

    def watch(page: Any) -> None:
        page.on("dialog", lambda dialog: dialog.accept())
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                errors.append(f"{page.url}: {message.text}")
                if message.type == "error" and "Failed to load resource" not in message.text
                else None
            ),
        )

    ctx.on("page", watch)
    yield ctx
    ctx.close()
    assert errors == []


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every page the suite visits is photographed here; with LICENTIA_UPDATE_SCREENSHOTS=1
    they replace docs/screenshots/ (what docs/console.md shows) at the end."""
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    if os.environ.get("LICENTIA_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for shot in folder.glob("*.png"):
            shutil.copy(shot, DOCS_SCREENSHOTS / shot.name)


@pytest.fixture
def check_page(screenshot_dir: Path) -> Callable[..., None]:
    """``check_page(page, name)``: no serious or critical axe-core violation on the page as
    it is now, no script error, and a screenshot named ``name``."""
    axe_source = (ASSETS / "axe.min.js").read_text()

    def check(page: Any, name: str | None = None) -> None:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(axe_source)  # through the DevTools protocol: the page's CSP stays on
        violations = page.evaluate(
            """async () => {
                const result = await axe.run(document, {resultTypes: ['violations']});
                return result.violations
                    .filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target).join(', ')}`);
            }"""
        )
        assert violations == [], f"{page.url}: {violations}"
        if name:
            page.screenshot(path=str(screenshot_dir / f"{name}.png"))

    return check
