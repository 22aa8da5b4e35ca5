"""The typed request methods: one per client event of PROTOCOL v1 (calls, chat, presence,
help requests, ping), each a thin wrapper around ``request()`` that builds the ``data`` and
turns the ``ack`` into a model of :mod:`instantmentor_client.models`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from instantmentor_client._delivery import Delivery
from instantmentor_client._requests import Requests
from instantmentor_client._wire import parse_list
from instantmentor_client.models import (
    CallInvitation,
    CallState,
    ConversationSummary,
    HelpRequest,
    HelpRequestCreated,
    HelpRequestUpdate,
    History,
    MentorStatus,
    MessageChangeAck,
    MessageSent,
    Pong,
    mentors_from,
)

MENTOR_STATUSES = ("available", "busy", "in_session", "break", "offline")

T = TypeVar("T")


class ApiMethods:
    """The typed requests, made with the ``requests`` part it is given; chat methods also
    feed the ``delivery`` bookkeeping (dedupe, seqs, receipts). The client is made of it."""

    def __init__(self, requests: Requests, delivery: Delivery) -> None:
        self._requests = requests
        self._delivery = delivery

    async def request(
        self,
        event: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        retry: bool = False,
    ) -> dict[str, Any]:
        """Send any client event; return its ``ack`` data (``pong`` data for ``ping``).

        ``retry``: resend on the next connection if the connection drops before the reply
        (only for idempotent events). Raises as described in the docstring of
        :mod:`instantmentor_client.client`.
        """
        return await self._requests.request(event, data, timeout=timeout, retry=retry)

    # -- calls (PROTOCOL §3) -------------------------------------------------------------

    async def initiate_call(
        self,
        receiver_id: str,
        call_type: str = "video",
        *,
        call_data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> CallInvitation:
        """Ring ``receiver_id`` (``call_type`` ``video``/``audio``). The ack's ``state`` is
        ``ringing``, or ``rejected`` with ``reason`` ``offline``/``busy``. Calling yourself:
        :class:`InvalidPayload`."""
        data = _compact(receiver_id=receiver_id, call_type=call_type, call_data=call_data)
        return await self._request_as(CallInvitation.from_dict, "initiate_call", data, timeout)

    async def accept_call(
        self,
        call_id: str,
        *,
        call_data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> CallState:
        """Accept a ringing call (receiver only: else :class:`Forbidden`; not ringing:
        :class:`Conflict`; unknown: :class:`NotFound`)."""
        data = _compact(call_id=call_id, call_data=call_data)
        return await self._request_as(CallState.from_dict, "accept_call", data, timeout)

    async def reject_call(
        self, call_id: str, *, reason: str | None = None, timeout: float | None = None
    ) -> CallState:
        """Reject a ringing call (receiver only)."""
        data = _compact(call_id=call_id, reason=reason)
        return await self._request_as(CallState.from_dict, "reject_call", data, timeout)

    async def end_call(self, call_id: str, *, timeout: float | None = None) -> CallState:
        """Hang up (accepted call) or cancel (ringing call); either party."""
        data = {"call_id": call_id}
        return await self._request_as(CallState.from_dict, "end_call", data, timeout)

    async def send_call_signal(
        self, call_id: str, signal: Mapping[str, Any], *, timeout: float | None = None
    ) -> None:
        """Relay a WebRTC offer/answer/ICE candidate (≤ 32 KiB) to the other party (event
        ``call_signal``), while the call rings or is accepted."""
        await self.request(
            "call_signal", {"call_id": call_id, "signal": dict(signal)}, timeout=timeout
        )

    # -- chat (PROTOCOL §4) --------------------------------------------------------------

    async def send_message(
        self,
        text: str,
        *,
        recipient_id: str | None = None,
        conversation_id: str | None = None,
        client_msg_id: str | None = None,
        call_id: str | None = None,
        timeout: float | None = None,
    ) -> MessageSent:
        """Send ``text`` to ``recipient_id`` or into ``conversation_id``; return once stored.

        A ``client_msg_id`` is generated when not given, which makes the send idempotent: it
        is resent across a reconnection within the timeout, and after a
        :class:`RequestTimeout` the app may call again with the same ``client_msg_id`` (the
        server then returns the first ack and delivers nothing new).
        """
        if recipient_id is None and conversation_id is None:
            raise ValueError("give recipient_id or conversation_id")
        data = _compact(
            recipient_id=recipient_id,
            conversation_id=conversation_id,
            text=text,
            client_msg_id=client_msg_id or uuid.uuid4().hex,
            call_id=call_id,
        )
        sent = await self._request_as(
            MessageSent.from_dict, "send_message", data, timeout, retry=True
        )
        self._delivery.on_sent(sent.message_id, sent.conversation_id, sent.seq)
        return sent

    async def edit_message(
        self, conversation_id: str, message_id: str, text: str, *, timeout: float | None = None
    ) -> MessageChangeAck:
        """Replace the text of a message this user sent (within 24 h of sending); both
        participants get ``message_edited``. A deleted message: :class:`Conflict`."""
        data = {"conversation_id": conversation_id, "message_id": message_id, "text": text}
        return await self._request_as(
            MessageChangeAck.from_dict, "edit_message", data, timeout, retry=True
        )

    async def delete_message(
        self, conversation_id: str, message_id: str, *, timeout: float | None = None
    ) -> MessageChangeAck:
        """Delete a message this user sent: its seq stays, its text becomes None; both
        participants get ``message_deleted``. Deleting it again returns the first ack."""
        data = {"conversation_id": conversation_id, "message_id": message_id}
        return await self._request_as(
            MessageChangeAck.from_dict, "delete_message", data, timeout, retry=True
        )

    async def mark_delivered(
        self, conversation_id: str, up_to_seq: int, *, timeout: float | None = None
    ) -> None:
        """Mark the peer's messages up to ``up_to_seq`` delivered (done automatically with
        ``auto_ack_delivery``). ``up_to_seq`` beyond the last message: :class:`InvalidPayload`."""
        await self._delivery.mark("message_delivered", conversation_id, up_to_seq, timeout)

    async def mark_read(
        self, conversation_id: str, up_to_seq: int, *, timeout: float | None = None
    ) -> None:
        """Mark the peer's messages up to ``up_to_seq`` read (implies delivered)."""
        await self._delivery.mark("message_read", conversation_id, up_to_seq, timeout)

    async def typing(
        self,
        *,
        recipient_id: str | None = None,
        conversation_id: str | None = None,
        active: bool = True,
        timeout: float | None = None,
    ) -> None:
        """``user_typing`` (``active=True``; refresh within 6 s or the server stops it) or
        ``user_stopped_typing`` (``active=False``)."""
        if recipient_id is None and conversation_id is None:
            raise ValueError("give recipient_id or conversation_id")
        event = "user_typing" if active else "user_stopped_typing"
        data = _compact(recipient_id=recipient_id, conversation_id=conversation_id)
        await self.request(event, data, timeout=timeout)

    async def get_history(
        self,
        conversation_id: str,
        *,
        before_seq: int | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> History:
        """Up to ``limit`` (1–100, default 50) messages before ``before_seq`` (newest when
        absent), ascending. The messages count as received: they are not pushed to the app
        again as ``message_received`` and fill gaps."""
        data = _compact(conversation_id=conversation_id, before_seq=before_seq, limit=limit)
        history = await self._request_as(
            History.from_dict, "get_history", data, timeout, retry=True
        )
        self._delivery.on_history(history.messages)
        return history

    async def list_conversations(
        self, *, timeout: float | None = None
    ) -> list[ConversationSummary]:
        """This user's conversations, most recently active first."""
        ack = await self.request("list_conversations", timeout=timeout, retry=True)
        return parse_list(ack, "conversations", ConversationSummary.from_dict)

    async def sync(
        self, since: Mapping[str, int] | None = None, *, timeout: float | None = None
    ) -> None:
        """Ask for every message after ``since[conversation_id]`` (default: the client's
        :attr:`watermarks`); they arrive as ``message_received`` pushes, deduplicated. One
        unknown conversation fails the whole request with :class:`NotFound`."""
        tracker = self._delivery.tracker
        await self._delivery.sync(tracker.watermarks() if since is None else since, timeout)

    # -- presence (PROTOCOL §5) ----------------------------------------------------------

    async def update_mentor_status(
        self,
        status: str = "available",
        status_message: str | None = None,
        *,
        status_data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> MentorStatus:
        """Set this mentor's status: ``available`` (event ``mentor_available``) or ``busy``,
        ``in_session``, ``break``, ``offline`` (event ``mentor_busy``). Students:
        :class:`Forbidden`."""
        if status not in MENTOR_STATUSES:
            raise ValueError(f"status must be one of {', '.join(MENTOR_STATUSES)}")
        data = _compact(status_message=status_message, status_data=status_data)
        if status == "available":
            event = "mentor_available"
        else:
            event, data = "mentor_busy", {**data, "status": status}
        return await self._request_as(MentorStatus.from_dict, event, data, timeout)

    async def get_mentors(self, *, timeout: float | None = None) -> list[MentorStatus]:
        """Every mentor's status."""
        return await self._request_as(mentors_from, "get_mentors", None, timeout, retry=True)

    # -- help requests (PROTOCOL §6) -----------------------------------------------------

    async def request_help(
        self,
        subject: str,
        message: str,
        *,
        urgency: str = "medium",
        mentor_id: str | None = None,
        timeout: float | None = None,
    ) -> HelpRequestCreated:
        """Ask one mentor (``mentor_id``) or every available mentor (default) for help
        (event ``student_request_help``; students only, else :class:`Forbidden`)."""
        data = _compact(subject=subject, message=message, urgency=urgency, mentor_id=mentor_id)
        return await self._request_as(
            HelpRequestCreated.from_dict, "student_request_help", data, timeout
        )

    async def accept_help_request(
        self, request_id: str, *, timeout: float | None = None
    ) -> HelpRequestUpdate:
        """Take a help request (mentors). First accept wins; later ones: :class:`Conflict`."""
        return await self._act_on_help_request("accept_help_request", request_id, timeout)

    async def decline_help_request(
        self, request_id: str, *, reason: str | None = None, timeout: float | None = None
    ) -> HelpRequestUpdate:
        """Decline a help request shown to this mentor."""
        return await self._act_on_help_request("decline_help_request", request_id, timeout, reason)

    async def cancel_help_request(
        self, request_id: str, *, timeout: float | None = None
    ) -> HelpRequestUpdate:
        """Withdraw one's own open help request (students)."""
        return await self._act_on_help_request("cancel_help_request", request_id, timeout)

    async def _act_on_help_request(
        self, event: str, request_id: str, timeout: float | None, reason: str | None = None
    ) -> HelpRequestUpdate:
        """Accept, decline or cancel (``event``) the help request ``request_id``."""
        data = _compact(request_id=request_id, reason=reason)
        return await self._request_as(HelpRequestUpdate.from_dict, event, data, timeout)

    async def list_help_requests(self, *, timeout: float | None = None) -> list[HelpRequest]:
        """Mentor: the open requests visible to them, most urgent then oldest first;
        student: their own."""
        ack = await self.request("list_help_requests", timeout=timeout, retry=True)
        return parse_list(ack, "requests", HelpRequest.from_dict)

    # -- heartbeat -----------------------------------------------------------------------

    async def ping(self, *, timeout: float | None = None) -> Pong:
        """Round trip to the gateway; ``rtt_s`` measured here."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        data = await self.request("ping", timeout=timeout, retry=True)
        return Pong(server_time=str(data.get("server_time", "")), rtt_s=loop.time() - started)

    async def _request_as(
        self,
        parse: Callable[[dict[str, Any]], T],
        event: str,
        data: Mapping[str, Any] | None,
        timeout: float | None,
        *,
        retry: bool = False,
    ) -> T:
        """:meth:`request`, its ``ack`` data turned into ``parse``'s model."""
        return parse(await self.request(event, data, timeout=timeout, retry=retry))


def _compact(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not ``None`` (absent optional fields stay absent)."""
    return {
        k: (dict(v) if isinstance(v, Mapping) else v) for k, v in values.items() if v is not None
    }
