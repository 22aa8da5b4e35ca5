"""The demo page's help form comes only from ``GET /api/help/templates``: when that request
fails the help panel says so (and sends nothing), and *retry* fills the form once it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Route, expect

from tests.support.browser import headless_chromium
from tests.support.stack import Stack

expect.set_options(timeout=15_000)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with headless_chromium() as launched:
        yield launched


async def test_the_help_panel_shows_when_the_templates_do_not_load(
    stack: Stack, browser: Browser
) -> None:
    gw = stack.start_gateway(IM_DEV_MODE="true")
    context = await browser.new_context()
    page = await context.new_page()
    js_errors: list[str] = []
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))

    async def unavailable(route: Route) -> None:
        await route.fulfill(status=503, json={"error": {"code": "unavailable", "message": "down"}})

    await page.route("**/api/help/templates", unavailable)
    await page.goto(f"{gw.http}/demo/")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.get_by_test_id("login-user-id").fill("sam")
    await page.get_by_test_id("login-role").select_option("student")
    await page.get_by_test_id("connect-button").click()
    await expect(page.get_by_test_id("connection-state")).to_have_attribute(
        "data-state", "connected"
    )

    error = page.get_by_test_id("help-templates-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("Could not load the help templates")
    await expect(error).to_contain_text("HTTP 503")
    await expect(page.get_by_test_id("help-send")).to_be_disabled()
    await expect(page.get_by_test_id("help-subject").locator("option")).to_have_count(0)
    await expect(page.get_by_test_id("help-quick-action")).to_have_count(0)

    await page.unroute("**/api/help/templates")
    await page.get_by_test_id("help-templates-retry").click()
    await expect(error).to_be_hidden()
    await expect(page.get_by_test_id("help-subject").locator("option")).to_have_text(
        ["Math", "Programming", "Science", "General"]
    )
    await expect(page.get_by_test_id("help-urgency-medium")).to_have_attribute(
        "aria-checked", "true"
    )
    await expect(page.get_by_test_id("help-quick-action")).not_to_have_count(0)
    await expect(page.get_by_test_id("help-send")).to_be_enabled()
    assert js_errors == []
    await context.close()
