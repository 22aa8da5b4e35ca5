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
from collections.abc import Callable, Mapping
from contextlib import suppress
from types import TracebackType

from instantmentor_client._api import ApiMethods
from instantmentor_client._connection import ConnectOptions, Supervisor
from instantmentor_client._delivery import Delivery
from instantmentor_client._dispatch import Dispatcher, EventStream, Handler
from instantmentor_client._handshake import TokenProvider
from instantmentor_client._link import ConnectionState, Link
from instantmentor_client._monitoring import ClientStats, ReconnectAttempt
from instantmentor_client._requests import Requests
from instantmentor_client.models import Session
from instantmentor_client.reliability import Backoff, MessageDedupe, SeqTracker

CLOSE_TASKS_TIMEOUT_S = 5.0

__all__ = [
    "ClientStats",
    "ConnectionState",
    "EventStream",
    "Handler",
    "InstantMentorClient",
    "ReconnectAttempt",
    "TokenProvider",
]

# The client is made of parts, each in its own module, each given the parts it uses:
#   _link.Link                 the socket in use, its generation, the ConnectionState
#   _requests.Requests         refs, pending replies, waiting for a connection, timeouts
#   _dispatch.Dispatcher       on() handlers and events() streams, one dispatcher task
#   _delivery.Delivery         dedupe, seq tracking, receipts, gap-filling sync
#   _connection.Supervisor     serve / heartbeat / reconnect (+ _handshake: one attempt)
#   _api.ApiMethods            the typed request methods (the client's public surface)
# This class builds them from its configuration and runs the public lifecycle.


class InstantMentorClient(ApiMethods):
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
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.auto_ack_delivery = auto_ack_delivery
        self.stats = ClientStats()
        tracker = SeqTracker()
        for conversation_id, seq in (watermarks or {}).items():
            tracker.seed(conversation_id, seq)

        self._link = Link()
        self._dispatcher = Dispatcher()
        requests = Requests(self._link, request_timeout)
        delivery = Delivery(
            self._link,
            requests,
            self._dispatcher,
            self.stats,
            tracker=tracker,
            dedupe=MessageDedupe(dedupe_capacity),
            auto_ack=auto_ack_delivery,
            ack_delay=ack_delay,
            gap_fill_delay=gap_fill_delay,
        )
        options = ConnectOptions(
            url=url,
            token=token,
            token_provider=token_provider,
            connect_timeout=connect_timeout,
            max_frame_bytes=max_frame_bytes,
            reconnect=reconnect,
            backoff=backoff or Backoff(backoff_base, backoff_cap),
            max_attempts=max_reconnect_attempts,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            on_reconnect_attempt=on_reconnect_attempt,
        )
        self._supervisor = Supervisor(
            options, self._link, requests, delivery, self._dispatcher, self.stats
        )
        self._supervising: asyncio.Task[None] | None = None
        self._close_called = False
        super().__init__(requests, delivery)

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the client is in its life (see :class:`ConnectionState`)."""
        return self._link.state

    @property
    def session(self) -> Session | None:
        """The ``connected`` data of the current (or, while reconnecting, the last) connection;
        ``None`` before the first."""
        return self._link.session

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""
        return self._link.up

    @property
    def closed(self) -> bool:
        return self._link.state is ConnectionState.CLOSED

    @property
    def watermarks(self) -> dict[str, int]:
        """``{conversation_id: seq}``: every message up to ``seq`` seen (since the first one
        seen). Persist it and pass it back as ``watermarks=`` to resume without gaps."""
        return self._delivery.tracker.watermarks()

    @property
    def tracker(self) -> SeqTracker:
        """The per-conversation seq bookkeeping (read it; the client updates it)."""
        return self._delivery.tracker

    # -- events --------------------------------------------------------------------------

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(Event)`` (sync or async) for every push named ``event`` (``"*"``:
        all). Returns a function that unregisters it. Exceptions in handlers are logged."""
        return self._dispatcher.on(event, handler)

    def off(self, event: str, handler: Handler) -> None:
        self._dispatcher.off(event, handler)

    def events(self, *names: str) -> EventStream:
        """A stream of pushes (only ``names`` if given), subscribed now::

        async for event in client.events("message_received"):
            print(event.payload)
        """
        return self._dispatcher.events(*names)

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
        if self._link.ending:
            raise self._link.closed_error(None)
        if self._link.state is not ConnectionState.IDLE:
            raise RuntimeError("connect() was already called")
        ws, data = await self._supervisor.open()
        self._dispatcher.start()
        self._delivery.start()
        self._supervisor.activate(ws, data)
        self._supervising = asyncio.create_task(self._supervisor.run(ws), name="im-connection")
        session = self._link.session
        assert session is not None
        return session

    async def wait_connected(self, timeout: float | None = None) -> Session:
        """Wait until a connection is up (now or after a reconnection); raise
        :class:`NotConnected` after ``timeout`` s, :class:`ClientClosed` if it ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.request_timeout if timeout is None else timeout)
        await self._link.wait_connected(deadline, None)
        session = self._link.session
        assert session is not None
        return session

    async def close(self) -> None:
        """Flush pending delivery receipts (briefly), close the socket (1000), stop every
        task, fail waiting requests with :class:`ClientClosed` and end event streams after
        the events already received were dispatched. Idempotent."""
        if self._close_called:
            return
        self._close_called = True
        link = self._link
        if link.state is not ConnectionState.CLOSED:  # else ended from inside already
            link.closing()
        if link.up and self.auto_ack_delivery:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._delivery.flush_acks(timeout=1.0), 2.0)
        ws = link.socket
        link.closed()
        if ws is not None:
            with suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "client closing"), 3.0)
        me = asyncio.current_task()
        tasks = [t for t in (self._supervising, *self._delivery.tasks()) if t is not None]
        tasks = [t for t in tasks if t is not me and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a task that swallowed its cancel (see _reconnect_with_backoff) must not
            # hang close(); it sees the link ending and ends by itself.
            await asyncio.wait(tasks, timeout=CLOSE_TASKS_TIMEOUT_S)
        self._requests.end()
        self._dispatcher.finish()
        await self._dispatcher.wait_finished(5.0)
