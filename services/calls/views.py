"""How a call looks on the wire (PROTOCOL §3): push, ack and history payloads."""

from __future__ import annotations

from typing import Any

from services.calls.domain import Call, CallState, outcome
from shared.protocol import calls as wire
from shared.protocol.base import ServerPush


def initiated(call: Call) -> wire.CallInitiatedPush:
    return wire.CallInitiatedPush.model_validate(call, from_attributes=True)


def state_push(call: Call) -> ServerPush:
    """The push that announces the state ``call`` has just reached (not ringing)."""
    if call.state is CallState.ACCEPTED:
        assert call.accepted_by is not None and call.accepted_at is not None
        return wire.CallAcceptedPush(
            call_id=call.call_id,
            accepted_by=call.accepted_by,
            call_data=call.accept_data,
            accepted_at=call.accepted_at,
        )
    if call.state is CallState.REJECTED:
        return wire.CallRejectedPush(
            call_id=call.call_id, rejected_by=call.rejected_by, reason=call.reason
        )
    if call.state is CallState.MISSED:
        return wire.CallTimeoutPush(call_id=call.call_id)
    if call.state is CallState.ENDED:
        return wire.CallEndedPush.model_validate(
            {
                "call_id": call.call_id,
                "ended_by": call.ended_by,
                "reason": call.reason,
                "duration_s": call.duration_s,
            }
        )
    raise ValueError(f"no push announces a {call.state} call")


def signal(call: Call, from_user_id: str, payload: dict[str, Any]) -> wire.CallSignalPush:
    return wire.CallSignalPush(call_id=call.call_id, from_user_id=from_user_id, signal=payload)


def initiate_ack(call: Call) -> dict[str, Any]:
    return wire.InitiateCallAck(
        call_id=call.call_id,
        state=call.state.value,
        expires_at=call.expires_at,
        reason=call.reason if call.state is CallState.REJECTED else None,
    ).model_dump(exclude_none=True)


def state_ack(call: Call) -> dict[str, Any]:
    return wire.CallStateAck(call_id=call.call_id, state=call.state.value).model_dump()


def record(call: Call, user_id: str) -> dict[str, Any]:
    outgoing = user_id == call.caller_id
    return wire.CallRecord(
        call_id=call.call_id,
        direction="outgoing" if outgoing else "incoming",
        peer_id=call.receiver_id if outgoing else call.caller_id,
        peer_name=call.receiver_name if outgoing else call.caller_name,
        caller_id=call.caller_id,
        receiver_id=call.receiver_id,
        call_type=call.call_type,
        state=call.state.value,
        outcome=outcome(call),
        reason=call.reason,
        created_at=call.created_at,
        accepted_at=call.accepted_at,
        ended_at=call.ended_at,
        duration_s=call.duration_s,
    ).model_dump()


def history(calls: list[Call], user_id: str) -> dict[str, Any]:
    """``list_calls``' answer: ``user_id``'s calls as they see them, newest first."""
    return {"calls": [record(call, user_id) for call in calls]}
