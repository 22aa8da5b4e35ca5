"""The WebSocket demo page (`/demo/`) in a real headless Chromium, on a real stack.

Two browser contexts — a student and a mentor — use every panel of the page against the real
gateway and services: a live status change, a chat message with its receipts and typing
indicator, a call rung and accepted, a help request accepted. The page is only driven
through its ``data-testid`` elements, the way a person would use it, and every wait is one of
Playwright's deadlines. Screenshots of the page go to ``docs/demo-*.png``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect

from tests.support.browser import headless_chromium
from tests.support.stack import Gateway, Stack

DOCS = Path(__file__).resolve().parents[2] / "docs"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}

expect.set_options(timeout=15_000)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with headless_chromium() as launched:
        yield launched


@dataclass
class User:
    """One person's page, in a browser context of its own."""

    page: Page
    js_errors: list[str] = field(default_factory=list)

    def tid(self, test_id: str) -> Locator:
        return self.page.get_by_test_id(test_id)

    async def check_clean(self) -> None:
        """No uncaught exception in the page, and every request the page sent had a ref."""
        assert self.js_errors == []
        sent = await self.page.eval_on_selector_all(
            '[data-testid="log-entry"][data-dir="out"]', "items => items.map(li => li.title)"
        )
        assert sent, "the event log shows no frame sent"
        assert [frame for frame in sent if not json.loads(frame).get("ref")] == []


async def open_demo(browser: Browser, gateway: Gateway) -> User:
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    user = User(page)
    page.on("pageerror", lambda exc: user.js_errors.append(str(exc)))
    await page.goto(f"{gateway.http}/demo/")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return user


async def sign_in(browser: Browser, gateway: Gateway, user_id: str, role: str, name: str) -> User:
    user = await open_demo(browser, gateway)
    await user.tid("login-user-id").fill(user_id)
    await user.tid("login-role").select_option(role)
    await user.tid("login-name").fill(name)
    await user.tid("connect-button").click()
    await expect(user.tid("connection-state")).to_have_attribute("data-state", "connected")
    await expect(user.tid("identity-name")).to_have_text(name)
    await expect(user.tid("identity-role")).to_have_text(role)
    return user


async def test_a_student_and_a_mentor_use_every_panel(stack: Stack, browser: Browser) -> None:
    for service in ("presence", "chat", "calls", "help"):
        stack.start_service(service)
    gw = stack.start_gateway(IM_DEV_MODE="true")
    async with httpx.AsyncClient() as http:
        config = await http.get(f"{gw.http}/dev/config")
        assert config.json() == {"dev_mode": True}

    mentor = await sign_in(browser, gw, "maya", "mentor", "Maya")
    student = await sign_in(browser, gw, "sam", "student", "Sam")
    await expect(mentor.tid("status-panel")).to_be_visible()
    await expect(student.tid("status-panel")).to_be_hidden()
    await expect(student.tid("help-form")).to_be_visible()
    await expect(mentor.tid("help-form")).to_be_hidden()

    # -- presence: the mentor's status changes are seen live by the student ------------------
    maya = student.tid("mentor-card-maya")
    await expect(maya).to_have_attribute("data-online", "true")
    await expect(maya.get_by_test_id("mentor-status")).to_have_text("Available")
    await mentor.tid("status-message").fill("back at 2")
    await mentor.tid("status-preset-break").click()
    await expect(maya.get_by_test_id("mentor-status")).to_have_text("On a break")
    await expect(maya.get_by_test_id("mentor-message")).to_have_text("back at 2")
    await expect(maya).to_have_attribute("data-status", "break")
    await expect(mentor.tid("my-status")).to_have_text("On a break")
    await expect(mentor.tid("status-preset-break")).to_have_attribute("aria-pressed", "true")
    await mentor.tid("status-message").fill("Ask me about algebra")
    await mentor.tid("status-preset-available").click()
    await expect(maya.get_by_test_id("mentor-status")).to_have_text("Available")
    await expect(maya.get_by_test_id("mentor-message")).to_have_text("Ask me about algebra")

    # A second mentor takes a break, then closes the page: the student sees them go offline.
    leo = await sign_in(browser, gw, "leo", "mentor", "Leo")
    leo_card = student.tid("mentor-card-leo")
    await expect(leo_card).to_have_attribute("data-online", "true")
    await leo.tid("status-message").fill("back at 3pm")
    await leo.tid("status-preset-break").click()
    await expect(leo_card.get_by_test_id("mentor-status")).to_have_text("On a break")
    await expect(leo_card.get_by_test_id("mentor-message")).to_have_text("back at 3pm")
    await leo.check_clean()
    await leo.page.context.close()
    await expect(leo_card).to_have_attribute("data-online", "false")
    await expect(leo_card.get_by_test_id("mentor-status")).to_have_text("Offline")
    await expect(student.tid("mentor-count")).to_have_text("1 online")

    # -- chat: delivered while the mentor looks elsewhere, read once she opens it ---------------
    await mentor.tid("chat-peer-input").fill("leo")
    await mentor.tid("chat-open").click()
    await expect(mentor.tid("chat-title")).to_contain_text("Chat with Leo")
    await maya.get_by_test_id("mentor-chat").click()
    await expect(student.tid("chat-title")).to_contain_text("Chat with Maya")
    await student.tid("chat-input").fill("Hi Maya, can you help with fractions?")
    await student.tid("chat-send").click()
    question = student.tid("chat-message").filter(has_text="fractions")
    await expect(question).to_have_attribute("data-status", "delivered")
    await expect(question.get_by_test_id("message-receipt")).to_have_text("✓✓")
    chip = mentor.tid("conv-chip-sam")
    await expect(chip.get_by_test_id("conv-unread")).to_have_text("1")
    await chip.click()
    await expect(mentor.tid("chat-message").filter(has_text="fractions")).to_have_attribute(
        "data-mine", "false"
    )
    await expect(question).to_have_attribute("data-status", "read")
    await expect(question.get_by_test_id("message-receipt")).to_have_text("✓✓ Read")
    await expect(chip.get_by_test_id("conv-unread")).to_have_count(0)

    await mentor.tid("chat-input").press_sequentially("Sure, send me the first one")
    await expect(student.tid("typing-indicator")).to_have_text("Maya is typing…")
    await mentor.tid("chat-send").click()
    answer = student.tid("chat-message").filter(has_text="send me the first one")
    await expect(answer).to_have_attribute("data-mine", "false")
    await expect(student.tid("typing-indicator")).to_be_hidden()
    await expect(
        mentor.tid("chat-message").filter(has_text="send me the first one")
    ).to_have_attribute("data-status", "read")

    # -- edit and delete (v1.1): only one's own messages; both sides see the change -----------
    await expect(question.get_by_test_id("message-edit")).to_be_visible()
    await expect(answer.get_by_test_id("message-edit")).to_have_count(0)  # the mentor's
    student.page.once("dialog", lambda dialog: dialog.accept("Hi Maya, help with decimals?"))
    await question.get_by_test_id("message-edit").click()
    edited = mentor.tid("chat-message").filter(has_text="decimals")
    await expect(edited.get_by_test_id("message-edited")).to_have_text("edited")
    await expect(mentor.tid("chat-message").filter(has_text="fractions")).to_have_count(0)
    student.page.once("dialog", lambda dialog: dialog.accept())
    await (
        student.tid("chat-message")
        .filter(has_text="decimals")
        .get_by_test_id("message-delete")
        .click()
    )
    await expect(edited).to_have_count(0)
    gone = mentor.tid("chat-message").filter(has_text="message deleted")
    await expect(gone).to_have_attribute("data-seq", "1")
    await expect(gone.get_by_test_id("message-text")).to_have_class("bubble deleted")
    await expect(student.tid("chat-message").filter(has_text="message deleted")).to_have_count(1)

    # -- an error frame is shown clearly: calling yourself is refused -------------------------
    await student.tid("call-peer-input").fill("sam")
    await student.tid("call-audio").click()
    refused = student.tid("toast-error").filter(has_text="invalid_payload")
    await expect(refused).to_contain_text("you cannot call yourself")
    await refused.get_by_role("button", name="dismiss").click()
    await expect(refused).to_have_count(0)
    await expect(
        student.page.locator('[data-testid="log-entry"].error[data-event="error"]')
    ).not_to_have_count(0)
    await expect(student.tid("call-state")).to_have_attribute("data-state", "idle")

    # -- a call: ringing with a countdown, accepted, ended with its duration -------------------
    await student.tid("call-peer-input").fill("maya")
    await student.tid("call-video").click()
    await expect(student.tid("call-state")).to_have_attribute("data-state", "outgoing")
    await expect(student.tid("call-status")).to_have_text("Ringing Maya… (video)")
    await expect(student.tid("call-countdown")).to_have_text(re.compile(r"^(1\d|2\d|30) s$"))
    banner = mentor.tid("incoming-call")
    await expect(banner).to_be_visible()
    await expect(banner.get_by_test_id("incoming-call-text")).to_have_text(
        "Sam is calling you (video)"
    )
    await expect(banner.get_by_test_id("incoming-countdown")).to_have_text(
        re.compile(r"^(1\d|2\d|30) s$")
    )
    await mentor.page.screenshot(path=str(DOCS / "demo-incoming-call.png"))
    await banner.get_by_test_id("call-accept").click()
    for user, peer in ((student, "Maya"), (mentor, "Sam")):
        await expect(user.tid("call-state")).to_have_attribute("data-state", "accepted")
        await expect(user.tid("call-status")).to_have_text(f"In video call with {peer}")
    await expect(banner).to_be_hidden()
    await expect(maya.get_by_test_id("mentor-status")).to_have_text("In session")
    await expect(student.tid("call-duration")).to_have_text(re.compile(r"^0:0[1-9]$"))
    await student.tid("call-end").click()
    await expect(student.tid("call-state")).to_have_attribute("data-state", "idle")
    await expect(student.tid("call-summary")).to_have_text(
        re.compile(r"^Call with Maya ended by you · 0:\d\d$")
    )
    await expect(mentor.tid("call-summary")).to_have_text(
        re.compile(r"^Call with Sam ended by Sam · 0:\d\d$")
    )
    await expect(maya.get_by_test_id("mentor-status")).to_have_text("Available")

    # -- help: a high-urgency broadcast, accepted by the mentor --------------------------------
    await student.tid("help-subject").select_option("Programming")
    await student.tid("help-quick-action").filter(has_text="doesn't compile").click()
    await expect(student.tid("help-message")).to_have_value("My code doesn't compile / run")
    await student.tid("help-urgency-high").click()
    await expect(student.tid("help-urgency-high")).to_have_attribute("aria-checked", "true")
    await expect(student.tid("help-target")).to_have_value("broadcast_to_mentors")
    await student.tid("help-send").click()
    await expect(student.tid("help-note")).to_have_text("Request sent — 1 mentor notified.")
    mine = student.tid("my-help-request").filter(has_text="Programming")
    await expect(mine).to_have_attribute("data-status", "open")

    card = mentor.tid("help-card").filter(has_text="Programming")
    await expect(card).to_have_attribute("data-urgency", "high")
    await expect(card).to_contain_text("My code doesn't compile / run")
    await expect(card).to_contain_text("Sam")
    await expect(card).to_have_css("border-left-color", "rgb(244, 67, 54)")
    await expect(mentor.tid("help-inbox-count")).to_have_text("1")
    await card.get_by_test_id("help-accept").click()
    await expect(card).to_have_attribute("data-state", "mine")
    await expect(card.get_by_test_id("help-detail")).to_have_text("you are helping Sam")
    await expect(mine).to_have_attribute("data-status", "accepted")
    await expect(mine.get_by_test_id("help-detail")).to_have_text("accepted by Maya")
    await expect(student.tid("toast-ok").filter(has_text="Maya accepted")).to_be_visible()

    await mine.scroll_into_view_if_needed()
    await student.page.screenshot(path=str(DOCS / "demo-student.png"))
    await mentor.page.screenshot(path=str(DOCS / "demo-mentor.png"))
    await student.check_clean()
    await mentor.check_clean()


async def test_the_page_reconnects_when_the_gateway_restarts(
    stack: Stack, browser: Browser
) -> None:
    stack.start_service("presence")
    gw = stack.start_gateway(IM_DEV_MODE="true")
    mentor = await sign_in(browser, gw, "maya", "mentor", "Maya")
    await expect(mentor.tid("mentor-card-maya")).to_have_attribute("data-online", "true")

    gw.process.terminate()
    await expect(mentor.tid("connection-state")).to_have_attribute(
        "data-state", re.compile("^(reconnecting|connecting)$")
    )
    await expect(mentor.tid("connection-state")).to_contain_text(re.compile("retrying in|Reconn"))
    await asyncio.to_thread(stack.start_gateway, port=gw.port, IM_DEV_MODE="true")
    await expect(mentor.tid("connection-state")).to_have_attribute(
        "data-state", "connected", timeout=45_000
    )
    await expect(mentor.tid("mentor-card-maya")).to_have_attribute("data-online", "true")
    await mentor.tid("status-preset-busy").click()
    await expect(mentor.tid("my-status")).to_have_text("Busy")
    await mentor.check_clean()

    # Signing out closes the socket for good: no reconnect, and the panels are emptied.
    await mentor.tid("disconnect-button").click()
    await expect(mentor.tid("connection-state")).to_have_attribute("data-state", "disconnected")
    await expect(mentor.tid("mentor-card-maya")).to_have_count(0)
    await expect(mentor.tid("connect-button")).to_be_visible()
    await expect(mentor.tid("status-panel")).to_be_hidden()


async def test_without_dev_mode_there_are_no_dev_tokens_and_the_page_asks_for_one(
    stack: Stack, browser: Browser
) -> None:
    gw = stack.start_gateway()
    async with httpx.AsyncClient() as http:
        refused = await http.post(
            f"{gw.http}/dev/token", json={"user_id": "sam", "role": "student", "name": "Sam"}
        )
        assert refused.status_code == 404
        assert "eyJ" not in refused.text  # no JWT in the refusal
        config = await http.get(f"{gw.http}/dev/config")
        assert config.json() == {"dev_mode": False}

    user = await open_demo(browser, gw)
    await expect(user.tid("login-token")).to_be_visible()
    await expect(user.tid("login-user-id")).to_be_hidden()
    await expect(user.tid("dev-note")).to_contain_text("IM_DEV_MODE=false")
    await user.tid("login-token").fill(stack.token("sam", "student", "Sam"))
    await user.tid("connect-button").click()
    await expect(user.tid("connection-state")).to_have_attribute("data-state", "connected")
    await expect(user.tid("identity-name")).to_have_text("Sam")
    assert user.js_errors == []
