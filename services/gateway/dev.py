"""Development conveniences: the demo page (always) and dev tokens (only with IM_DEV_MODE)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from shared.auth import MAX_NAME_LENGTH, USER_ID_PATTERN, Role, issue_token

DEMO_DIR = Path(__file__).parent / "demo"
DEV_TOKEN_TTL_S = 12 * 3600

dev_routes = APIRouter()


class DevTokenRequest(BaseModel):
    user_id: str = Field(pattern=USER_ID_PATTERN)
    role: Role
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)


@dev_routes.post("/dev/token")
async def dev_token(body: DevTokenRequest, request: Request) -> dict[str, object]:
    """A token for any user — only while IM_DEV_MODE is on (never in production)."""
    settings = request.app.state.settings
    if not settings.dev_mode:
        raise HTTPException(404, "dev tokens are off (IM_DEV_MODE=false)")
    token = issue_token(body.user_id, body.role, settings.jwt_secret, body.name, DEV_TOKEN_TTL_S)
    return {"token": token, "expires_in_s": DEV_TOKEN_TTL_S}


@dev_routes.get("/dev/config")
async def dev_config(request: Request) -> dict[str, object]:
    """What the demo page needs to know about this gateway."""
    return {"dev_mode": bool(request.app.state.settings.dev_mode)}


@dev_routes.get("/demo", include_in_schema=False)
async def demo_redirect() -> Response:
    return RedirectResponse("/demo/")


@dev_routes.get("/demo/{path:path}", include_in_schema=False)
async def demo_file(path: str) -> Response:
    target = (DEMO_DIR / (path or "index.html")).resolve()
    if DEMO_DIR.resolve() not in target.parents or not target.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(target)
