"""``InstantMentorClient``: one logical session with the gateway, kept alive across drops.

Contract in short (details on each method):

* **Requests** (every typed method) send one frame with a fresh ``ref`` and return the typed
  ``ack`` data, or raise the :mod:`~instantmentor_client.errors` class of the ``error`` frame.
  The whole call — waiting for a connection, sending, waiting for the reply — is bounded by
  ``request_timeout`` (or the method's ``timeout``).
* **While disconnected** a request *waits* for the reconnection, up to its timeout; if none
  comes it raises :class:`~instantmentor_client.errors.NotConnected` (a kind of
  ``Unavailable``) and nothing was sent. A request whose connection drops after sending it
  is resent on the next connection when it is idempotent (reads, ``ping``, ``sync``,
  ``send_message`` — which always carries a ``client_msg_id``); any other raises
  :class:`~instantmentor_client.errors.ConnectionLost` (outcome unknown). No reply in time:
  :class:`~instantmentor_client.errors.RequestTimeout`.
* **Pushes** reach ``on(name, handler)`` callbacks and ``events()`` streams, in the order the
  frames arrived, from one dispatcher task (a slow handler delays later events, never
  replies). ``message_received`` is deduplicated by ``message_id`` (bounded LRU): the app
  sees each message once, whether it came live, in the catch-up after a connect, or from a
  ``sync``.
* **Reconnection**: after a lost connection (closed, broken, or silent past the heartbeat
  deadline) the client retries with exponential backoff and full jitter, capped, forever
  (or ``max_reconnect_attempts``). After every connection it sends
  ``sync {since: watermarks}`` for the conversations it has seen, so messages missed while
  away arrive (once). A refused token (4401 / HTTP 401/403) ends the client for good.
* **Delivery receipts**: with ``auto_ack_delivery`` the client sends ``message_delivered``
  per conversation up to the highest seq below which nothing is missing, coalesced.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from instantmentor_client import _transport
from instantmentor_client._transport import ConnectionClosed, InvalidHandshake, Socket
from instantmentor_client.errors import (
    AuthenticationFailed,
    ClientClosed,
    ConnectionLost,
    InstantMentorError,
    InternalError,
    NotConnected,
    ProtocolViolation,
    RequestTimeout,
    error_from_frame,
)
from instantmentor_client.models import (
    CallInvitation,
    CallState,
    ConversationSummary,
    Event,
    HelpRequest,
    HelpRequestCreated,
    HelpRequestUpdate,
    History,
    MentorStatus,
    MessageSent,
    Pong,
    Session,
    mentors_from,
)
from instantmentor_client.reliability import Backoff, MessageDedupe, SeqTracker

log = logging.getLogger("instantmentor_client")

Handler = Callable[[Event], Awaitable[None] | None]
TokenProvider = Callable[[], str | Awaitable[str]]

CLOSE_UNAUTHORIZED = 4401
SYNC_CHUNK = 1000  # PROTOCOL: `since` holds at most 1000 conversations
MENTOR_STATUSES = ("available", "busy", "in_session", "break", "offline")


@dataclass(frozen=True, slots=True)
class ReconnectAttempt:
    """Passed to ``on_reconnect_attempt`` before each attempt sleeps ``delay`` seconds.

    ``attempt`` counts from 1 since the connection was lost; ``delay`` is uniform in
    ``[0, ceiling]``; ``ceiling`` is ``min(backoff_cap, backoff_base * 2**(attempt-1))``;
    ``error`` is why the connection or the previous attempt failed (``None`` if unknown).
    """

    attempt: int
    delay: float
    ceiling: float
    error: BaseException | None


@dataclass
class ClientStats:
    """Counters for monitoring and tests."""

    connections: int = 0
    reconnect_attempts: int = 0
    duplicates_dropped: int = 0
    gap_syncs: int = 0
    dead_connections: int = 0  # connections dropped by the heartbeat deadline


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    generation: int
    event: str


class EventStream:
    """An async iterator over pushes (all, or only the names given to ``events()``).

    Subscribed from the moment ``client.events()`` returns; unbounded; ends when the client
    closes or :meth:`close` is called.
    """

    def __init__(self, client: InstantMentorClient, names: Iterable[str]) -> None:
        self._client = client
        self._names = frozenset(names)
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ended = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._ended:
            event = await self._queue.get()
            if event is None:
                self._end()
                break
            if not self._names or event.name in self._names:
                return event
        raise StopAsyncIteration

    async def next(self, timeout: float | None = None) -> Event:
        """The next event; ``TimeoutError`` after ``timeout`` s, ``StopAsyncIteration`` at end."""
        return await asyncio.wait_for(self.__anext__(), timeout)

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[Event], bool] | None = None,
        *,
        timeout: float | None = None,
    ) -> Event:
        """Consume events until one named ``name`` (and matching ``predicate``) arrives."""

        async def scan() -> Event:
            async for event in self:
                if event.name == name and (predicate is None or predicate(event)):
                    return event
            raise ClientClosed(f"the client closed before {name}")

        return await asyncio.wait_for(scan(), timeout)

    def close(self) -> None:
        """Stop receiving; a pending ``async for`` ends."""
        self._end()
        self._queue.put_nowait(None)

    def _put(self, event: Event | None) -> None:
        if not self._ended:
            self._queue.put_nowait(event)

    def _end(self) -> None:
        self._ended = True
        self._client._streams.discard(self)


class InstantMentorClient:
    """An async client of InstantMentor Realtime (PROTOCOL v1). See the module docstring.

    :param url: the gateway's WebSocket URL, e.g. ``wss://rt.example.com/ws``.
    :param token: a JWT; or give ``token_provider`` (sync or async callable), called before
        every connection so a refreshed token is used after a reconnect.
    :param request_timeout: default bound (s) of a request, including waiting for a connection.
    :param connect_timeout: bound (s) of one connection attempt (handshake + ``connected``).
    :param auto_ack_delivery: send ``message_delivered`` for received messages.
    :param ack_delay: coalescing window (s) of those receipts.
    :param reconnect: reconnect after a lost connection (else the client closes).
    :param backoff_base: first backoff ceiling (s); doubles per attempt.
    :param backoff_cap: largest backoff ceiling (s).
    :param max_reconnect_attempts: give up (close) after this many failed attempts in a row.
    :param heartbeat_interval: seconds between ``ping`` s; default: the server's
        ``heartbeat_interval_s``.
    :param heartbeat_timeout: a connection with no frame for this long after a ``ping`` is
        dead (default: the interval).
    :param dedupe_capacity: message ids remembered to drop duplicates.
    :param gap_fill_delay: a gap in a conversation's seqs still open after this long is
        filled with ``sync``.
    :param watermarks: ``{conversation_id: seq}`` already held (e.g. persisted by the app,
        see :attr:`watermarks`); synced on connect.
    :param on_reconnect_attempt: called with a :class:`ReconnectAttempt` before each attempt.
    :param max_frame_bytes: largest frame accepted from the server.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        auto_ack_delivery: bool = True,
        ack_delay: float = 0.05,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_reconnect_attempts: int | None = None,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float | None = None,
        dedupe_capacity: int = 10_000,
        gap_fill_delay: float = 1.0,
        watermarks: Mapping[str, int] | None = None,
        on_reconnect_attempt: Callable[[ReconnectAttempt], None] | None = None,
        max_frame_bytes: int | None = 16 * 1024 * 1024,
        backoff: Backoff | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss://, not {url!r}")
        if (token is None) == (token_provider is None):
            raise ValueError("give exactly one of token and token_provider")
        self.url = url
        self._token = token
        self._token_provider = token_provider
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.auto_ack_delivery = auto_ack_delivery
        self._ack_delay = ack_delay
        self._reconnect = reconnect
        self._backoff = backoff or Backoff(backoff_base, backoff_cap)
        self._max_attempts = max_reconnect_attempts
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._gap_fill_delay = gap_fill_delay
        self._on_reconnect_attempt = on_reconnect_attempt
        self._max_frame_bytes = max_frame_bytes

        self._dedupe = MessageDedupe(dedupe_capacity)
        self._tracker = SeqTracker()
        for conversation_id, seq in (watermarks or {}).items():
            self._tracker.seed(conversation_id, seq)
        self.stats = ClientStats()

        self._ws: Socket | None = None
        self._session: Session | None = None
        self._generation = 0
        self._started = False
        self._closing = False
        self._closed = False
        self._fatal: InstantMentorError | None = None
        self._changed = asyncio.Event()
        self._rx = asyncio.Event()
        self._ack_wakeup = asyncio.Event()
        self._pending: dict[str, _Pending] = {}
        self._ref_prefix = secrets.token_hex(3) + "-"
        self._refs = itertools.count(1)
        self._handlers: dict[str, list[Handler]] = {}
        self._streams: set[EventStream] = set()
        self._dispatch: asyncio.Queue[Event | None] = asyncio.Queue()
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self._gap_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # -- state ---------------------------------------------------------------------------

    @property
    def session(self) -> Session | None:
        """The ``connected`` data of the current (or, while reconnecting, the last) connection;
        ``None`` before the first."""
        return self._session

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""
        return self._ws is not None and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def watermarks(self) -> dict[str, int]:
        """``{conversation_id: seq}``: every message up to ``seq`` seen (since the first one
        seen). Persist it and pass it back as ``watermarks=`` to resume without gaps."""
        return self._tracker.watermarks()

    @property
    def tracker(self) -> SeqTracker:
        """The per-conversation seq bookkeeping (read it; the client updates it)."""
        return self._tracker

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> InstantMentorClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> Session:
        """Open the first connection and start the background tasks; return the session.

        One attempt, bounded by ``connect_timeout``: raises :class:`AuthenticationFailed`
        (token refused), :class:`NotConnected` (network, handshake, timeout) or
        :class:`ProtocolViolation`; the client may be ``connect()`` ed again after those.
        Reconnection (with backoff) applies only once a first connection succeeded.
        """
        if self._closed:
            raise self._closed_error(None)
        if self._started:
            raise RuntimeError("connect() was already called")
        ws, data = await self._open()
        self._started = True
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="im-dispatch")
        if self.auto_ack_delivery:
            self._acker = asyncio.create_task(self._ack_loop(), name="im-acks")
        self._activate(ws, data)
        self._supervisor = asyncio.create_task(self._supervise(ws), name="im-connection")
        assert self._session is not None
        return self._session

    async def wait_connected(self, timeout: float | None = None) -> Session:
        """Wait until a connection is up (now or after a reconnection); raise
        :class:`NotConnected` after ``timeout`` s, :class:`ClientClosed` if it ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.request_timeout if timeout is None else timeout)
        await self._wait_connected(deadline, None)
        assert self._session is not None
        return self._session

    async def close(self) -> None:
        """Flush pending delivery receipts (briefly), close the socket (1000), stop every
        task, fail waiting requests with :class:`ClientClosed` and end event streams after
        the events already received were dispatched. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._ws is not None and not self._closed and self.auto_ack_delivery:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._flush_acks(timeout=1.0), 2.0)
        self._closed = True
        self._fatal = self._fatal or ClientClosed("the client is closed")
        ws = self._ws
        if ws is not None:
            with suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "client closing"), 3.0)
        me = asyncio.current_task()
        tasks = [t for t in (self._supervisor, self._acker, self._gap_task) if t is not None]
        tasks += list(self._background)
        tasks = [t for t in tasks if t is not me and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_pending(lambda p: True)
        self._signal()
        self._dispatch.put_nowait(None)
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not me:
            try:
                await asyncio.wait_for(asyncio.shield(dispatcher), 5.0)
            except TimeoutError:
                dispatcher.cancel()
        elif dispatcher is None:
            self._end_streams()

    # -- events --------------------------------------------------------------------------

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(Event)`` (sync or async) for every push named ``event`` (``"*"``:
        all). Returns a function that unregisters it. Exceptions in handlers are logged."""
        self._handlers.setdefault(event, []).append(handler)

        def off() -> None:
            self.off(event, handler)

        return off

    def off(self, event: str, handler: Handler) -> None:
        with suppress(KeyError, ValueError):
            self._handlers[event].remove(handler)

    def events(self, *names: str) -> EventStream:
        """A stream of pushes (only ``names`` if given), subscribed now::

        async for event in client.events("message_received"):
            print(event.payload)
        """
        stream = EventStream(self, names)
        if self._closed and (self._dispatcher is None or self._dispatcher.done()):
            stream._put(None)
        else:
            self._streams.add(stream)
        return stream

    # -- requests: generic ---------------------------------------------------------------

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
        (only for idempotent events). Raises as described in the module docstring.
        """
        loop = asyncio.get_running_loop()
        limit = self.request_timeout if timeout is None else timeout
        deadline = loop.time() + limit
        body = {"event": event, "data": dict(data or {})}
        stale: int | None = None
        while True:
            ws, generation = await self._wait_connected(deadline, event, stale)
            ref = f"{self._ref_prefix}{next(self._refs)}"
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._pending[ref] = _Pending(future, generation, event)
            try:
                try:
                    await ws.send(_dumps({**body, "ref": ref}))
                except ConnectionClosed:
                    stale = generation  # not sent: wait for the next connection
                    continue
                try:
                    return await asyncio.wait_for(future, max(deadline - loop.time(), 0.0))
                except TimeoutError:
                    raise RequestTimeout(
                        f"no reply to {event} within {limit:g}s", event=event
                    ) from None
                except ConnectionLost:
                    if retry and loop.time() < deadline:
                        stale = generation
                        continue
                    raise
            finally:
                self._pending.pop(ref, None)

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
        return CallInvitation.from_dict(await self.request("initiate_call", data, timeout=timeout))

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
        return CallState.from_dict(await self.request("accept_call", data, timeout=timeout))

    async def reject_call(
        self, call_id: str, *, reason: str | None = None, timeout: float | None = None
    ) -> CallState:
        """Reject a ringing call (receiver only)."""
        data = _compact(call_id=call_id, reason=reason)
        return CallState.from_dict(await self.request("reject_call", data, timeout=timeout))

    async def end_call(self, call_id: str, *, timeout: float | None = None) -> CallState:
        """Hang up (accepted call) or cancel (ringing call); either party."""
        return CallState.from_dict(
            await self.request("end_call", {"call_id": call_id}, timeout=timeout)
        )

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
        sent = MessageSent.from_dict(
            await self.request("send_message", data, timeout=timeout, retry=True)
        )
        self._dedupe.add(sent.message_id)
        if self._tracker.observe(sent.conversation_id, sent.seq):
            self._schedule_gap_fill()
        return sent

    async def mark_delivered(
        self, conversation_id: str, up_to_seq: int, *, timeout: float | None = None
    ) -> None:
        """Mark the peer's messages up to ``up_to_seq`` delivered (done automatically with
        ``auto_ack_delivery``). ``up_to_seq`` beyond the last message: :class:`InvalidPayload`."""
        await self.request(
            "message_delivered",
            {"conversation_id": conversation_id, "up_to_seq": up_to_seq},
            timeout=timeout,
        )
        self._tracker.mark_acked(conversation_id, up_to_seq)

    async def mark_read(
        self, conversation_id: str, up_to_seq: int, *, timeout: float | None = None
    ) -> None:
        """Mark the peer's messages up to ``up_to_seq`` read (implies delivered)."""
        await self.request(
            "message_read",
            {"conversation_id": conversation_id, "up_to_seq": up_to_seq},
            timeout=timeout,
        )
        self._tracker.mark_acked(conversation_id, up_to_seq)

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
        history = History.from_dict(
            await self.request("get_history", data, timeout=timeout, retry=True)
        )
        me = self._session.user_id if self._session else None
        for message in history.messages:
            self._dedupe.add(message.message_id)
            self._tracker.observe(
                message.conversation_id, message.seq, from_peer=message.sender_id != me
            )
        if self.auto_ack_delivery and history.messages:
            self._ack_wakeup.set()
        return history

    async def list_conversations(
        self, *, timeout: float | None = None
    ) -> list[ConversationSummary]:
        """This user's conversations, most recently active first."""
        ack = await self.request("list_conversations", timeout=timeout, retry=True)
        return [ConversationSummary.from_dict(c) for c in _items(ack, "conversations")]

    async def sync(
        self, since: Mapping[str, int] | None = None, *, timeout: float | None = None
    ) -> None:
        """Ask for every message after ``since[conversation_id]`` (default: the client's
        :attr:`watermarks`); they arrive as ``message_received`` pushes, deduplicated. One
        unknown conversation fails the whole request with :class:`NotFound`."""
        await self._sync_all(self._tracker.watermarks() if since is None else since, timeout)

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
            ack = await self.request("mentor_available", data, timeout=timeout)
        else:
            ack = await self.request("mentor_busy", {**data, "status": status}, timeout=timeout)
        return MentorStatus.from_dict(ack)

    async def get_mentors(self, *, timeout: float | None = None) -> list[MentorStatus]:
        """Every mentor's status."""
        return mentors_from(await self.request("get_mentors", timeout=timeout, retry=True))

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
        ack = await self.request("student_request_help", data, timeout=timeout)
        return HelpRequestCreated.from_dict(ack)

    async def accept_help_request(
        self, request_id: str, *, timeout: float | None = None
    ) -> HelpRequestUpdate:
        """Take a help request (mentors). First accept wins; later ones: :class:`Conflict`."""
        ack = await self.request("accept_help_request", {"request_id": request_id}, timeout=timeout)
        return HelpRequestUpdate.from_dict(ack)

    async def decline_help_request(
        self, request_id: str, *, reason: str | None = None, timeout: float | None = None
    ) -> HelpRequestUpdate:
        """Decline a help request shown to this mentor."""
        data = _compact(request_id=request_id, reason=reason)
        ack = await self.request("decline_help_request", data, timeout=timeout)
        return HelpRequestUpdate.from_dict(ack)

    async def cancel_help_request(
        self, request_id: str, *, timeout: float | None = None
    ) -> HelpRequestUpdate:
        """Withdraw one's own open help request (students)."""
        ack = await self.request("cancel_help_request", {"request_id": request_id}, timeout=timeout)
        return HelpRequestUpdate.from_dict(ack)

    async def list_help_requests(self, *, timeout: float | None = None) -> list[HelpRequest]:
        """Mentor: the open requests visible to them, most urgent then oldest first;
        student: their own."""
        ack = await self.request("list_help_requests", timeout=timeout, retry=True)
        return [HelpRequest.from_dict(r) for r in _items(ack, "requests")]

    # -- heartbeat -----------------------------------------------------------------------

    async def ping(self, *, timeout: float | None = None) -> Pong:
        """Round trip to the gateway; ``rtt_s`` measured here."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        data = await self.request("ping", timeout=timeout, retry=True)
        return Pong(server_time=str(data.get("server_time", "")), rtt_s=loop.time() - started)

    # -- internals: connection -----------------------------------------------------------

    async def _resolve_token(self) -> str:
        if self._token is not None:
            return self._token
        assert self._token_provider is not None
        try:
            token = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as exc:
            raise NotConnected(f"token provider failed: {exc!r}") from exc
        return str(token)

    async def _open(self) -> tuple[Socket, dict[str, Any]]:
        """One connection attempt: socket + ``connected`` frame."""
        token = await self._resolve_token()
        try:
            ws = await _transport.open_socket(
                self.url, token, open_timeout=self.connect_timeout, max_size=self._max_frame_bytes
            )
        except InvalidHandshake as exc:
            status = _transport.http_status(exc)
            if status in (401, 403):
                raise AuthenticationFailed(f"the server refused the token (HTTP {status})") from exc
            raise NotConnected(f"WebSocket handshake with {self.url} failed: {exc}") from exc
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            raise NotConnected(f"cannot connect to {self.url}: {exc!r}") from exc
        try:
            raw = await asyncio.wait_for(ws.recv(), self.connect_timeout)
        except ConnectionClosed as exc:
            code, reason = _transport.close_info(exc, ws)
            if code == CLOSE_UNAUTHORIZED:
                raise AuthenticationFailed(reason or "the server refused the token") from None
            raise NotConnected(f"closed before connected ({code} {reason})".strip()) from None
        except TimeoutError:
            _transport.abort(ws)
            raise NotConnected("no connected frame within connect_timeout") from None
        try:
            frame = json.loads(raw)
            if frame.get("event") != "connected":
                raise ProtocolViolation(f"expected connected first, got {frame.get('event')!r}")
            data = dict(frame["data"])
            Session.from_dict(data)
        except (ValueError, KeyError, TypeError, AttributeError, ProtocolViolation) as exc:
            _transport.abort(ws)
            if isinstance(exc, ProtocolViolation):
                raise
            raise ProtocolViolation(f"bad connected frame: {raw!r}") from exc
        return ws, data

    def _activate(self, ws: Socket, data: dict[str, Any]) -> None:
        self._generation += 1
        self._ws = ws
        self._session = Session.from_dict(data)
        self.stats.connections += 1
        self._emit(Event("connected", data))
        self._signal()
        log.info(
            "connected as %s (connection %s)", self._session.user_id, self._session.connection_id
        )
        if len(self._tracker):
            self._spawn(self._resync())
        if self.auto_ack_delivery:
            self._ack_wakeup.set()

    def _deactivate(self, ws: Socket, reason: BaseException | None) -> None:
        generation = self._generation
        self._ws = None
        self._fail_pending(
            lambda p: p.generation == generation,
            lambda p: ConnectionLost(
                f"connection lost before the reply to {p.event}", event=p.event
            ),
        )
        closed = reason if isinstance(reason, ConnectionClosed) else None
        code, text = _transport.close_info(closed, ws)
        if isinstance(reason, ConnectionLost):
            text = reason.message
        will_retry = self._reconnect and not self._closing and code != CLOSE_UNAUTHORIZED
        self._emit(
            Event("disconnected", {"code": code, "reason": text, "reconnecting": will_retry})
        )
        self._signal()
        log.info("disconnected (%s %s)", code, text)

    async def _supervise(self, ws: Socket) -> None:
        """Serve the connection; when it ends, reconnect (with backoff) and serve again."""
        try:
            while True:
                reason: BaseException | None = None
                try:
                    reason = await self._serve(ws)
                finally:
                    self._deactivate(ws, reason)
                if self._closing:
                    return
                code, text = _transport.close_info(
                    reason if isinstance(reason, ConnectionClosed) else None, ws
                )
                if code == CLOSE_UNAUTHORIZED:
                    self._shut(AuthenticationFailed(text or "the server refused the token"))
                    return
                if not self._reconnect:
                    self._shut(ClientClosed("the connection was lost and reconnect is off"))
                    return
                opened = await self._reconnect_with_backoff(reason)
                if opened is None:
                    return
                ws, data = opened
                self._activate(ws, data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: do not leave requests hanging
            log.exception("connection supervisor failed")
            self._shut(InternalError(f"connection supervisor failed: {exc!r}"))

    async def _reconnect_with_backoff(
        self, reason: BaseException | None
    ) -> tuple[Socket, dict[str, Any]] | None:
        error = reason
        for attempt in itertools.count(1):
            if self._max_attempts is not None and attempt > self._max_attempts:
                self._shut(ClientClosed(f"gave up reconnecting after {attempt - 1} attempts"))
                return None
            ceiling = self._backoff.ceiling(attempt)
            delay = self._backoff.delay(attempt)
            self.stats.reconnect_attempts += 1
            if self._on_reconnect_attempt is not None:
                try:
                    self._on_reconnect_attempt(ReconnectAttempt(attempt, delay, ceiling, error))
                except Exception:
                    log.exception("on_reconnect_attempt hook failed")
            log.info("reconnect attempt %d in %.2fs (%r)", attempt, delay, error)
            await asyncio.sleep(delay)
            try:
                return await self._open()
            except AuthenticationFailed as exc:
                self._shut(exc)
                return None
            except (NotConnected, ProtocolViolation) as exc:
                error = exc
        return None  # unreachable: itertools.count never ends

    async def _serve(self, ws: Socket) -> BaseException | None:
        """Read until the connection ends or the heartbeat finds it dead; return why."""
        reader = asyncio.create_task(self._read_loop(ws), name="im-reader")
        heart = asyncio.create_task(self._heartbeat(ws), name="im-heartbeat")
        try:
            done, _ = await asyncio.wait({reader, heart}, return_when=asyncio.FIRST_COMPLETED)
            if reader not in done and heart.result():
                self.stats.dead_connections += 1
                _transport.abort(ws)
                return ConnectionLost("no frame from the server within the heartbeat deadline")
            return await reader
        finally:
            for task in (reader, heart):
                task.cancel()
            await asyncio.gather(reader, heart, return_exceptions=True)

    async def _read_loop(self, ws: Socket) -> BaseException | None:
        try:
            async for raw in ws:
                self._on_frame(raw)
        except ConnectionClosed as exc:
            return exc
        return None

    async def _heartbeat(self, ws: Socket) -> bool:
        """Ping every interval; ``True`` when no frame at all came within the timeout after a
        ping (dead connection). ``False`` when sending failed (the reader sees the close)."""
        assert self._session is not None
        interval = self._heartbeat_interval or float(self._session.heartbeat_interval_s) or 20.0
        patience = self._heartbeat_timeout or interval
        beats = itertools.count(1)
        while True:
            await asyncio.sleep(interval)
            self._rx.clear()
            try:
                await asyncio.wait_for(
                    ws.send(_dumps({"event": "ping", "ref": f"{self._ref_prefix}hb{next(beats)}"})),
                    patience,
                )
                await asyncio.wait_for(self._rx.wait(), patience)
            except TimeoutError:
                log.warning("no frame within %.1fs after a ping: connection is dead", patience)
                return True
            except ConnectionClosed:
                return False

    async def _wait_connected(
        self, deadline: float, event: str | None, stale: int | None = None
    ) -> tuple[Socket, int]:
        """The live connection (not generation ``stale``), waiting until ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise self._closed_error(event)
            if self._ws is not None and self._generation != stale:
                return self._ws, self._generation
            if not self._started:
                raise NotConnected("not connected: call connect() first", event=event)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotConnected("no connection to the server within the timeout", event=event)
            changed = self._changed
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _signal(self) -> None:
        """Wake everything waiting for a state change."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _closed_error(self, event: str | None) -> InstantMentorError:
        fatal = self._fatal or ClientClosed("the client is closed")
        return type(fatal)(fatal.message, code=fatal.code, event=event)

    def _fail_pending(
        self,
        which: Callable[[_Pending], bool],
        error: Callable[[_Pending], InstantMentorError] | None = None,
    ) -> None:
        for pending in list(self._pending.values()):
            if which(pending) and not pending.future.done():
                exc = error(pending) if error else self._closed_error(pending.event)
                pending.future.set_exception(exc)

    def _shut(self, error: InstantMentorError) -> None:
        """End the client for good from inside (auth refused, reconnect off, gave up)."""
        log.warning("client closed: %s", error)
        self._closed = True
        self._fatal = error
        self._fail_pending(lambda p: True)
        self._emit(Event("closed", {"code": error.code, "reason": error.message}))
        self._signal()
        me = asyncio.current_task()
        for task in [self._acker, self._gap_task, *self._background]:
            if task is not None and task is not me:
                task.cancel()
        self._dispatch.put_nowait(None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- internals: frames ---------------------------------------------------------------

    def _on_frame(self, raw: str | bytes) -> None:
        self._rx.set()
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("ignoring a frame that is not JSON: %.200r", raw)
            return
        if not isinstance(frame, dict):
            return
        name = frame.get("event")
        data = frame.get("data")
        data = data if isinstance(data, dict) else {}
        ref = frame.get("ref")
        if name in ("ack", "error", "pong") and isinstance(ref, str):
            pending = self._pending.get(ref)
            if pending is not None and not pending.future.done():
                if name == "error":
                    pending.future.set_exception(error_from_frame(data))
                else:
                    pending.future.set_result(data)
            elif name == "error":
                log.info("error for a request no longer waited for: %s", data)
            return
        if not isinstance(name, str) or name in ("ack", "pong"):
            return
        if name == "message_received":
            self._on_message(data)
        else:
            self._emit(Event(name, data))

    def _on_message(self, data: dict[str, Any]) -> None:
        message_id = data.get("message_id")
        if isinstance(message_id, str) and not self._dedupe.add(message_id):
            self.stats.duplicates_dropped += 1
            return
        conversation_id, seq = data.get("conversation_id"), data.get("seq")
        if isinstance(conversation_id, str) and isinstance(seq, int):
            me = self._session.user_id if self._session else None
            from_peer = data.get("sender_id") != me
            if self._tracker.observe(conversation_id, seq, from_peer=from_peer):
                self._schedule_gap_fill()
            if from_peer and self.auto_ack_delivery:
                self._ack_wakeup.set()
        self._emit(Event("message_received", data))

    def _emit(self, event: Event) -> None:
        self._dispatch.put_nowait(event)

    async def _dispatch_loop(self) -> None:
        try:
            while True:
                event = await self._dispatch.get()
                if event is None:
                    return
                for handler in [*self._handlers.get(event.name, ()), *self._handlers.get("*", ())]:
                    try:
                        result = handler(event)
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        log.exception("handler for %s failed", event.name)
                for stream in list(self._streams):
                    stream._put(event)
        finally:
            self._end_streams()

    def _end_streams(self) -> None:
        for stream in list(self._streams):
            stream._put(None)
        self._streams.clear()

    # -- internals: receipts and gaps ----------------------------------------------------

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wakeup.wait()
            await asyncio.sleep(self._ack_delay)  # coalesce a burst into one receipt
            self._ack_wakeup.clear()
            await self._flush_acks()

    async def _flush_acks(self, timeout: float | None = None) -> None:
        for conversation_id, up_to_seq in self._tracker.ackable().items():
            try:
                await self.mark_delivered(conversation_id, up_to_seq, timeout=timeout)
            except InstantMentorError as exc:
                log.info("delivery receipt for %s failed: %s", conversation_id, exc)

    def _schedule_gap_fill(self) -> None:
        if self._gap_task is None or self._gap_task.done():
            self._gap_task = self._spawn(self._fill_gaps())

    async def _fill_gaps(self) -> None:
        await asyncio.sleep(self._gap_fill_delay)  # out-of-order pushes usually fill it first
        gaps = self._tracker.gaps()
        if gaps:
            self.stats.gap_syncs += 1
            try:
                await self._sync_all(gaps, None)
            except InstantMentorError as exc:
                log.warning("sync to fill gaps failed: %s", exc)

    async def _resync(self) -> None:
        try:
            await self._sync_all(self._tracker.watermarks(), None)
        except InstantMentorError as exc:
            log.warning("sync after connecting failed: %s", exc)

    async def _sync_all(self, since: Mapping[str, int], timeout: float | None) -> None:
        items = list(since.items())
        for start in range(0, len(items), SYNC_CHUNK):
            chunk = dict(items[start : start + SYNC_CHUNK])
            await self.request("sync", {"since": chunk}, timeout=timeout, retry=True)


def _compact(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not ``None`` (absent optional fields stay absent)."""
    return {
        k: (dict(v) if isinstance(v, Mapping) else v) for k, v in values.items() if v is not None
    }


def _items(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ProtocolViolation(f"expected a list in {key!r}, got {value!r}")
    return value


def _dumps(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
