"""A headless Chromium for the browser tests, driven by Playwright's async API.

Uses Debian's ``/usr/bin/chromium`` (installed with apt-get when missing and running as root,
the way ``tools/rabbit.py`` installs rabbitmq-server) instead of Playwright's own downloads:
``playwright install`` needs the internet, this machine has none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"
APT_PACKAGE = "chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ChromiumUnavailable(RuntimeError):
    """No Chromium here and no way to install it; the message says what to install."""


def ensure_chromium() -> str:
    """The path of Chromium, installing Debian's package first when it is missing (root only)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ChromiumUnavailable(
            f"{CHROMIUM} is missing. Install it with `sudo apt-get install -y chromium`."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing chromium with apt-get …", flush=True)
    install = ["apt-get", "install", "-y", "-q", APT_PACKAGE]  # recommends bring the fonts
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    if not Path(CHROMIUM).exists():
        raise ChromiumUnavailable(f"apt-get installed {APT_PACKAGE} but {CHROMIUM} is missing")
    return CHROMIUM


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[Browser]:
    """A launched headless Chromium for as long as the context lasts."""
    executable = ensure_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
