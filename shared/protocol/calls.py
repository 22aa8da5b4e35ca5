"""PROTOCOL §3 — calls and WebRTC signalling."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from shared.protocol.base import EntityId, Payload, UserId, bounded_object

CallData = Annotated[dict[str, Any], bounded_object(8 * 1024)]
Signal = Annotated[dict[str, Any], bounded_object(32 * 1024)]


class InitiateCall(Payload):
    receiver_id: UserId
    call_type: Literal["video", "audio"]
    call_data: CallData | None = None


class AcceptCall(Payload):
    call_id: EntityId
    call_data: CallData | None = None


class RejectCall(Payload):
    call_id: EntityId
    reason: str | None = Field(default=None, max_length=200)


class EndCall(Payload):
    call_id: EntityId


class CallSignal(Payload):
    call_id: EntityId
    signal: Signal
