"""How help requests look on the wire (PROTOCOL §6): pushes, acks and lists."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from services.help.domain import HelpRequest
from shared.auth import Identity
from shared.clock import iso
from shared.protocol import help as wire
from shared.protocol.envelope import fit

V = TypeVar("V", bound=wire.HelpRequestView)


def _request(r: HelpRequest, model: type[V]) -> V:
    """A request as clients see it, as ``model``."""
    return model.model_validate(r, from_attributes=True)


def request(r: HelpRequest) -> dict[str, Any]:
    """A request as clients see it, in a list."""
    return _request(r, wire.HelpRequestView).model_dump()


def received(r: HelpRequest) -> wire.HelpRequestReceived:
    """``help_request_received`` (published at once, to be counted or ordered)."""
    return _request(r, wire.HelpRequestReceived)


def request_list(requests: Iterable[HelpRequest]) -> dict[str, Any]:
    """``list_help_requests``' answer, in the order given, as many as fit in one frame."""
    return {"requests": fit([request(r) for r in requests])}


def created_ack(r: HelpRequest, delivered_to: int) -> dict[str, Any]:
    """The ``ack`` of ``student_request_help``. The same command again (a double tap, a
    redelivery) answers with the request as it is now, whatever its status."""
    return {
        "request_id": r.request_id,
        "status": r.status.value,
        "delivered_to": delivered_to,
        "expires_at": iso(r.expires_at),
    }


def status_ack(request_id: str, status: str) -> dict[str, Any]:
    """The ``ack`` of ``accept_help_request`` and ``cancel_help_request``."""
    return {"request_id": request_id, "status": status}


def declined_ack(request_id: str) -> dict[str, Any]:
    return {"request_id": request_id}


def accepted(request_id: str, mentor: Identity) -> wire.HelpRequestAccepted:
    return wire.HelpRequestAccepted(
        request_id=request_id, mentor_id=mentor.user_id, mentor_name=mentor.name
    )


def declined(request_id: str, mentor_id: str, reason: str | None) -> wire.HelpRequestDeclined:
    return wire.HelpRequestDeclined(request_id=request_id, mentor_id=mentor_id, reason=reason)


def closed(request_id: str, reason: wire.CloseReason) -> wire.HelpRequestClosed:
    return wire.HelpRequestClosed(request_id=request_id, reason=reason)


def expired(request_id: str) -> wire.HelpRequestExpired:
    return wire.HelpRequestExpired(request_id=request_id)
