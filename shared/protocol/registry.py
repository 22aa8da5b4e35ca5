"""The one table of client events: who may send each, which service handles it, its schema.

The gateway validates frames against it; every service dispatches by it. Adding an event to
the protocol means adding one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.auth import Role
from shared.errors import Forbidden, InvalidPayload, UnknownEvent
from shared.protocol import calls, chat, help, presence
from shared.protocol.base import Empty, Payload

ANYONE = frozenset({Role.STUDENT, Role.MENTOR})
MENTORS = frozenset({Role.MENTOR})
STUDENTS = frozenset({Role.STUDENT})

GATEWAY = "gateway"
# Every service, in the order `make up` starts them (presence first: the others ask it).
SERVICES = ("presence", "chat", "calls", "help")

# Transient traffic (ARCHITECTURE "Two classes of traffic"): nothing is stored, a lost one is
# replaced by the next, and latency matters most. These take the light path: a bounded,
# non-persistent queue without publisher confirms, shed first under load.
TRANSIENT = frozenset({"call_signal", "user_typing", "user_stopped_typing"})


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    service: str
    payload: type[Payload]
    roles: frozenset[Role] = ANYONE
    transient: bool = False


def _specs(service: str, *rows: tuple[str, type[Payload], frozenset[Role]]) -> list[EventSpec]:
    return [
        EventSpec(name, service, payload, roles, transient=name in TRANSIENT)
        for name, payload, roles in rows
    ]


CLIENT_EVENTS: dict[str, EventSpec] = {
    spec.name: spec
    for spec in [
        *_specs(GATEWAY, ("ping", Empty, ANYONE)),
        *_specs(
            "calls",
            ("initiate_call", calls.InitiateCall, ANYONE),
            ("accept_call", calls.AcceptCall, ANYONE),
            ("reject_call", calls.RejectCall, ANYONE),
            ("end_call", calls.EndCall, ANYONE),
            ("call_signal", calls.CallSignal, ANYONE),
        ),
        *_specs(
            "chat",
            ("send_message", chat.SendMessage, ANYONE),
            ("message_delivered", chat.MessageReceipt, ANYONE),
            ("message_read", chat.MessageReceipt, ANYONE),
            ("user_typing", chat.Typing, ANYONE),
            ("user_stopped_typing", chat.Typing, ANYONE),
            ("get_history", chat.GetHistory, ANYONE),
            ("list_conversations", Empty, ANYONE),
            ("sync", chat.Sync, ANYONE),
            ("edit_message", chat.EditMessage, ANYONE),
            ("delete_message", chat.DeleteMessage, ANYONE),
        ),
        *_specs(
            "presence",
            ("mentor_available", presence.MentorAvailable, MENTORS),
            ("mentor_busy", presence.MentorBusy, MENTORS),
            ("get_mentors", Empty, ANYONE),
        ),
        *_specs(
            "help",
            ("student_request_help", help.StudentRequestHelp, STUDENTS),
            ("accept_help_request", help.HelpRequestRef, MENTORS),
            ("decline_help_request", help.DeclineHelpRequest, MENTORS),
            ("cancel_help_request", help.HelpRequestRef, STUDENTS),
            ("list_help_requests", Empty, ANYONE),
        ),
    ]
}


def spec_for(event: str) -> EventSpec:
    try:
        return CLIENT_EVENTS[event]
    except KeyError:
        raise UnknownEvent(f"unknown event {event!r}") from None


def authorize(spec: EventSpec, role: Role) -> None:
    if role not in spec.roles:
        allowed = " or ".join(sorted(r.value for r in spec.roles))
        raise Forbidden(f"{spec.name} is for a {allowed}, not a {role.value}")


def validate_payload(spec: EventSpec, data: dict[str, Any]) -> Payload:
    """Parse ``data`` with the event's schema, turning pydantic's errors into one clear message."""
    try:
        return spec.payload.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "data"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
