"""A real Chromium (Debian's, never a downloaded one) against the live server."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import fresh_code
from tests.worker.conftest import live  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser tests need Chromium at /usr/bin/chromium: "
            "sudo apt-get install -y chromium (make test does this where it can)"
        )
    # Playwright's sync API keeps an event loop running in this thread; the test's own database
    # reads are still plain synchronous calls, which Django refuses under a loop unless told.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Person:
    """One person at their own browser (separate cookies), signed in through the real pages."""

    def __init__(self, context: BrowserContext, base_url: str, user):
        self.context, self.base_url, self.user = context, base_url, user
        self.page: Page = context.new_page()
        self.page.set_default_timeout(15_000)

    def go(self, path: str) -> Page:
        self.page.goto(self.base_url + path)
        return self.page

    def sign_in(self) -> "Person":
        page = self.go("/login/")
        page.get_by_label("Username").fill(self.user.username)
        page.get_by_label("Password").fill(f"{self.user.username}-password-123")
        page.get_by_role("button", name="Continue").click()
        page.get_by_label("Code from your authenticator app").fill(fresh_code(self.user))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(self.base_url + "/")
        return self

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def people(browser, live_server):
    contexts: list[BrowserContext] = []

    def person(user, *, viewport: dict | None = None) -> Person:
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        contexts.append(context)
        return Person(context, live_server.url, user)

    yield person
    for context in contexts:
        context.close()
