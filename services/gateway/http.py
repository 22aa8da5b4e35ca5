"""HTTP routes (PROTOCOL §7): health, readiness, metrics, and the Bearer-authenticated API,
each API call answered by the owning service over the broker."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway import metrics
from services.gateway.help_templates import help_templates
from services.gateway.router import Router
from shared.auth import Identity, bearer_token, verify_token
from shared.errors import AuthError, ErrorCode, RealtimeError, Unavailable
from shared.protocol.registry import spec_for, validate_payload

HTTP_STATUS = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_PAYLOAD: 400,
    ErrorCode.UNKNOWN_EVENT: 400,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

routes = APIRouter()


def router_of(request: Request) -> Router:
    router: Router = request.app.state.router
    return router


def identity_of(request: Request) -> Identity:
    token = bearer_token(request.headers.get("authorization"))
    try:
        return verify_token(token, request.app.state.settings.jwt_secret)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


User = Annotated[Identity, Depends(identity_of)]


def error_response(code: str, message: str) -> JSONResponse:
    status = HTTP_STATUS.get(ErrorCode(code), 500) if code in set(ErrorCode) else 500
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def ask(
    request: Request, user: Identity, service: str, event: str, data: dict[str, Any]
) -> Response:
    """Send ``event`` to ``service`` as ``user`` and answer with its reply."""
    try:
        reply = await router_of(request).requests.call(user, service, event, data)
    except Unavailable as exc:
        return error_response(ErrorCode.UNAVAILABLE, exc.message)
    if not reply.ok:
        return error_response(reply.code or ErrorCode.INTERNAL, reply.message or "")
    return JSONResponse(reply.data)


async def ask_client_event(
    request: Request, user: Identity, event: str, data: dict[str, Any]
) -> Response:
    """Like :func:`ask` for an event of the protocol: same schema and role checks as on /ws."""
    spec = spec_for(event)
    try:
        payload = validate_payload(spec, data)
    except RealtimeError as exc:
        return error_response(exc.code, exc.message)
    return await ask(request, user, spec.service, event, payload.model_dump(mode="json"))


@routes.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@routes.get("/readyz")
async def readyz(request: Request) -> Response:
    connected = router_of(request).broker.connected
    metrics.BROKER_UP.set(1 if connected else 0)
    if request.app.state.sessions.stopping:  # a load balancer stops sending sockets here
        return JSONResponse({"status": "stopping"}, status_code=503)
    if connected:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "broker unavailable"}, status_code=503)


@routes.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text; with ``IM_METRICS_TOKEN`` set, only for ``Authorization: Bearer`` it
    (the gateway's port faces the internet; its counters describe the deployment)."""
    expected = request.app.state.settings.metrics_token
    if expected:
        given = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(
                401, "metrics need IM_METRICS_TOKEN", headers={"WWW-Authenticate": "Bearer"}
            )
    return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@routes.get("/api/mentors")
async def mentors(request: Request, user: User) -> Response:
    return await ask_client_event(request, user, "get_mentors", {})


@routes.get("/api/conversations")
async def conversations(request: Request, user: User) -> Response:
    return await ask_client_event(request, user, "list_conversations", {})


@routes.get("/api/conversations/{conversation_id}/messages")
async def conversation_messages(
    request: Request,
    user: User,
    conversation_id: str,
    before_seq: Annotated[int | None, Query()] = None,
    limit: Annotated[int, Query()] = 50,
) -> Response:
    data: dict[str, Any] = {"conversation_id": conversation_id, "limit": limit}
    if before_seq is not None:
        data["before_seq"] = before_seq
    return await ask_client_event(request, user, "get_history", data)


@routes.get("/api/calls")
async def calls(
    request: Request,
    user: User,
    before: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query()] = 50,
) -> Response:
    """The user's calls, newest first; ``before`` (ISO time) pages back."""
    data: dict[str, Any] = {"limit": limit}
    if before is not None:
        data["before"] = before
    return await ask(request, user, "calls", "list_calls", data)


@routes.get("/api/help/templates")
async def templates(_: User) -> dict[str, object]:
    """Static: the subjects, urgencies and quick actions a client offers as one-tap requests."""
    return help_templates()
