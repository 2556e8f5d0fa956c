"""Fixtures for the dashboard's browser tests: headless Debian Chromium driven by Playwright
(never a browser of Playwright's own), a real ``cpool serve`` on 127.0.0.1, and screenshots
saved under ``test-artifacts/web/`` (gitignored)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import admin_token, kill_leftovers
from tests.server.serverproc import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


def launch(playwright):
    """Debian's Chromium, headless (the only browser these tests use)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is absent: install Debian's chromium package "
            "(apt-get install chromium; .ci/system-deps does it in CI)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


def shot(page, name: str) -> Path:
    """A full-page screenshot, kept as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Dashboard:
    url: str
    admin: str
    tokens: dict[str, str]

    def api(self, token: str, method: str, path: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def submit(self, tenant: str, **spec) -> dict:
        r = self.api(self.tokens[tenant], "POST", "/v1/jobs", json=spec)
        assert r.status_code == 201, r.text
        return r.json()

    def login(self, browser, token: str):
        """A fresh browser context logged in with ``token`` through the login form."""
        ctx = browser.new_context(viewport={"width": 1360, "height": 900})
        page = ctx.new_page()
        page.goto(self.url + "/")
        assert "/ui/login" in page.url
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        return page


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[Dashboard]:
    """A real ``cpool serve`` (Gavel's 36 x 3 GPU pool) with tenants acme and bolt."""
    tmp = tmp_path_factory.mktemp("web")
    data, url = tmp / "data", f"sqlite:///{tmp / 'cpool.db'}"
    admin = admin_token(data, url)
    server = ServerProcess(
        data, url, "--config", "gavel-36x3", "--round-seconds", "0.2", "--grace-seconds", "1"
    )
    server.start()
    try:
        d = Dashboard(server.url, admin, {})
        for name, body in (
            ("acme", {"cohort": "c", "quotas": {"*": {"nominal": 12, "borrowing_limit": 12}}}),
            ("bolt", {"cohort": "c", "budget_usd": 1000, "default_max_hours": 1}),
        ):
            r = d.api(admin, "POST", "/v1/tenants", json={"name": name, **body})
            assert r.status_code == 201, r.text
            r = d.api(admin, "POST", f"/v1/tenants/{name}/tokens")
            d.tokens[name] = r.json()["token"]
        yield d
    finally:
        server.stop()
        kill_leftovers(data)
