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
import itertools
import secrets
from collections.abc import Callable, Mapping
from contextlib import suppress
from types import TracebackType

from instantmentor_client._api import ApiMethods
from instantmentor_client._connection import ConnectionSupervisor
from instantmentor_client._dispatch import EventStream, Handler
from instantmentor_client._handshake import TokenProvider
from instantmentor_client._monitoring import ClientStats, ReconnectAttempt
from instantmentor_client.errors import ClientClosed
from instantmentor_client.models import Session
from instantmentor_client.reliability import Backoff, MessageDedupe, SeqTracker

CLOSE_TASKS_TIMEOUT_S = 5.0

__all__ = [
    "ClientStats",
    "EventStream",
    "Handler",
    "InstantMentorClient",
    "ReconnectAttempt",
    "TokenProvider",
]

# The behaviour is split by concern into mixins, each in its own module:
#   _connection.ConnectionSupervisor  serve / heartbeat / reconnect (+ _handshake: one attempt)
#   _delivery.ChatDelivery            dedupe, seq tracking, receipts, gap-filling sync
#   _requests.RequestReply            refs, pending replies, waiting for a connection, timeouts
#   _dispatch.PushDispatch            on() handlers and events() streams
#   _api.ApiMethods                   the typed request methods
# This class holds the configuration and all state (set up here), and the public lifecycle.


class InstantMentorClient(ApiMethods, ConnectionSupervisor):
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

        self._ws = None
        self._session = None
        self._generation = 0
        self._started = False
        self._closing = False
        self._closed = False
        self._fatal = None
        self._changed = asyncio.Event()
        self._rx = asyncio.Event()
        self._ack_wakeup = asyncio.Event()
        self._pending = {}
        self._ref_prefix = secrets.token_hex(3) + "-"
        self._refs = itertools.count(1)
        self._handlers = {}
        self._streams = set()
        self._dispatch = asyncio.Queue()
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher = None
        self._acker = None
        self._gap_task = None
        self._background = set()

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
        if tasks:
            # Bounded: a task that swallowed its cancel (see _reconnect_with_backoff) must not
            # hang close(); it sees ``_closing`` and ends by itself.
            await asyncio.wait(tasks, timeout=CLOSE_TASKS_TIMEOUT_S)
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
