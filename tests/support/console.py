"""The hub console in a browser, as the tests drive it."""

from __future__ import annotations

from playwright.sync_api import Page


def console_sign_in(page: Page, base: str, username: str, password: str) -> None:
    """Sign ``page`` in to the console of the hub at ``base`` through its login form."""
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
