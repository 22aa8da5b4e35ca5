"""The demo page stays a set of small native ES modules (docs/demo.md has the map).

It was once one 1,610-line function holding a copy of the help templates; these checks fail if
it grows back into one file, if the copy returns, or if a panel starts talking to the server
or to another panel directly instead of through ``net.js`` and ``state.js``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from services.gateway.dev import DEMO_DIR, dev_routes
from services.gateway.help_templates import help_templates

MAX_LINES = 400
MODULES = sorted(DEMO_DIR.glob("*.js"))
SERVER = re.compile(r"\bnew WebSocket\b|\bWebSocket\.|\bfetch\(|XMLHttpRequest|EventSource")
IMPORT = re.compile(r"""^\s*import\b[^"']*["']([^"']+)["']""", re.MULTILINE)

# Modules every panel may import; and parts of one panel, with the modules allowed to use them.
SHARED = {"dom.js", "state.js", "net.js"}
PARTS = {
    "conversations.js": {"chat.js", "typing.js", "message-changes.js"},
    "typing.js": {"chat.js"},
    "message-changes.js": {"chat.js"},
    "help-card.js": {"help.js", "inbox.js"},
}


def imports_of(module: Path) -> list[str]:
    return IMPORT.findall(module.read_text(encoding="utf-8"))


def test_the_demo_is_small_modules_loaded_from_main() -> None:
    names = {m.name for m in MODULES}
    assert {"main.js", "net.js", "state.js"} <= names
    assert "app.js" not in names
    too_long = {m.name: n for m in MODULES if (n := len(m.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}, f"split these modules (at most {MAX_LINES} lines each)"

    html = (DEMO_DIR / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script type="module" src="main.js">']


def test_every_import_resolves_and_every_module_is_used() -> None:
    reached: set[str] = set()
    todo = ["main.js"]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        for spec in imports_of(DEMO_DIR / name):
            assert spec.startswith("./") and spec.endswith(".js"), f"{name}: import {spec!r}"
            assert (DEMO_DIR / spec[2:]).is_file(), f"{name} imports a missing {spec}"
            todo.append(spec[2:])
    assert reached == {m.name for m in MODULES}


def test_panels_talk_through_net_and_state_only() -> None:
    for module in MODULES:
        text = module.read_text(encoding="utf-8")
        if module.name != "net.js":
            assert not SERVER.search(text), f"{module.name} talks to the server: use net.js"
        if module.name in SHARED:
            assert imports_of(module) == [], f"{module.name} must not depend on a panel"
        if module.name == "main.js":
            continue
        for spec in imports_of(module):
            target = spec[2:]
            allowed = target in SHARED or module.name in PARTS.get(target, set())
            assert allowed, f"{module.name} imports {target}: go through state.js instead"


def test_no_copy_of_the_help_templates() -> None:
    """The page shows what GET /api/help/templates answers, and holds no copy of it."""
    templates: dict[str, Any] = help_templates()
    texts = [q["text"] for q in templates["quick_actions"]]
    texts += [u["description"] for u in templates["urgencies"]]
    for path in sorted(DEMO_DIR.iterdir()):
        content = path.read_text(encoding="utf-8")
        assert [t for t in texts if t in content] == [], f"{path.name} copies the help templates"
    help_js = (DEMO_DIR / "help.js").read_text(encoding="utf-8")
    assert '"/api/help/templates"' in help_js


async def test_the_gateway_serves_the_modules_as_javascript() -> None:
    app = FastAPI()
    app.include_router(dev_routes)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        responses = {m.name: await client.get(f"/demo/{m.name}") for m in MODULES}
        page = await client.get("/demo/")
    for name, response in responses.items():
        assert response.status_code == 200
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type in {"text/javascript", "application/javascript"}, name
        assert_allows_own_scripts(response.headers.get("content-security-policy"))
    assert page.headers["content-type"].startswith("text/html")
    assert_allows_own_scripts(page.headers.get("content-security-policy"))


def assert_allows_own_scripts(policy: str | None) -> None:
    """No Content-Security-Policy, or one that lets the page load its own modules."""
    if policy is None:
        return
    directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in policy.split(";") if d.strip())
    sources = directives.get("script-src", directives.get("default-src", "'self'"))
    assert "'self'" in sources, policy
