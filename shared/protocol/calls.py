"""PROTOCOL §3 — calls and WebRTC signalling."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from shared.protocol.base import (
    ClientEvent,
    EntityId,
    Payload,
    ServerPush,
    Timestamp,
    UserId,
    bounded_object,
)

CallData = Annotated[dict[str, Any], bounded_object(8 * 1024)]
Signal = Annotated[dict[str, Any], bounded_object(32 * 1024)]


class CallEvent(ClientEvent):
    SERVICE: ClassVar[str] = "calls"


class InitiateCall(CallEvent):
    EVENT = "initiate_call"

    receiver_id: UserId
    call_type: Literal["video", "audio"]
    call_data: CallData | None = None


class AcceptCall(CallEvent):
    EVENT = "accept_call"

    call_id: EntityId
    call_data: CallData | None = None


class RejectCall(CallEvent):
    EVENT = "reject_call"

    call_id: EntityId
    reason: str | None = Field(default=None, max_length=200)


class EndCall(CallEvent):
    EVENT = "end_call"

    call_id: EntityId


class CallSignal(CallEvent):
    EVENT = "call_signal"
    TRANSIENT = True

    call_id: EntityId
    signal: Signal


# -- What the calls service sends (PROTOCOL §3) ----------------

CALL_INITIATED = "call_initiated"
CALL_ACCEPTED = "call_accepted"
CALL_REJECTED = "call_rejected"
CALL_ENDED = "call_ended"
CALL_TIMEOUT = "call_timeout"
CALL_SIGNAL = "call_signal"

CallStateName = Literal["ringing", "accepted", "rejected", "missed", "ended"]


class CallInitiatedPush(ServerPush):
    """``call_initiated``: to the receiver (and, in the catch-up after connecting, the caller)."""

    EVENT = CALL_INITIATED

    call_id: str
    caller_id: str
    caller_name: str
    caller_role: str
    receiver_id: str
    call_type: str
    call_data: dict[str, Any] | None
    created_at: Timestamp
    expires_at: Timestamp


class CallAcceptedPush(ServerPush):
    EVENT = CALL_ACCEPTED

    call_id: str
    accepted_by: str
    call_data: dict[str, Any] | None
    accepted_at: Timestamp


class CallRejectedPush(ServerPush):
    """``rejected_by`` is null when the system rejected (``reason`` ``offline``/``busy``)."""

    EVENT = CALL_REJECTED

    call_id: str
    rejected_by: str | None
    reason: str | None


class CallEndedPush(ServerPush):
    """``ended_by`` is null when the system ended the call (``connection_lost`` or a party
    that went away while it rang)."""

    EVENT = CALL_ENDED

    call_id: str
    ended_by: str | None
    reason: Literal["cancelled", "hangup", "connection_lost"]
    duration_s: float


class CallTimeoutPush(ServerPush):
    EVENT = CALL_TIMEOUT

    call_id: str


class CallSignalPush(ServerPush):
    EVENT = CALL_SIGNAL

    call_id: str
    from_user_id: str
    signal: dict[str, Any]


class InitiateCallAck(BaseModel):
    """``state`` is ``rejected`` (with ``reason``) when the system refused the call at once;
    both parties also get ``call_rejected``."""

    call_id: str
    state: CallStateName
    expires_at: Timestamp
    reason: str | None = None


class CallStateAck(BaseModel):
    """The ack of ``accept_call``, ``reject_call`` and ``end_call``."""

    call_id: str
    state: CallStateName


class ListCalls(Payload):
    """The user's call history (``GET /api/calls``), newest first."""

    limit: int = Field(default=50, ge=1, le=100)
    before: str | None = Field(
        default=None, max_length=40, description="ISO time: only calls created before it"
    )


CallOutcome = Literal[
    "ringing",
    "in_progress",
    "completed",
    "connection_lost",
    "cancelled",
    "rejected",
    "busy",
    "offline",
    "missed",
]


class CallRecord(BaseModel):
    """One call of a user's history, seen from that user (``peer_id``, ``direction``)."""

    call_id: str
    direction: Literal["outgoing", "incoming"]
    peer_id: str
    peer_name: str | None
    caller_id: str
    receiver_id: str
    call_type: str
    state: CallStateName
    outcome: CallOutcome
    reason: str | None
    created_at: Timestamp
    accepted_at: Timestamp | None
    ended_at: Timestamp | None
    duration_s: float
