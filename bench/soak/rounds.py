"""One round of the soak: C fresh students connect at once, pair up (0↔1, 2↔3, …) and each
sends its partner one chat message; each acknowledges the message it receives with a delivery
receipt, sends one ``user_typing`` and one ``ping``; then every socket closes.

Every wait has a deadline: a reply that does not come in time is a failure of that step, a
message acked to its sender but not pushed to its recipient in time is lost."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets

from bench.openloop.gateway_client import Frame, GatewayClient
from bench.openloop.gateway_sio_client import SocketIOGatewayClient

Connect = Callable[[str, str, str, bool], Awaitable[GatewayClient]]
REPLIES = ("ack", "error", "pong")  # pong: the /ws answer to a ping (Socket.IO acks it)
CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Deadlines:
    connect_s: float = 15.0  # handshake until the ``connected`` frame
    reply_s: float = 10.0  # a command until its ack, error or pong
    deliver_s: float = 10.0  # from the round's first send until the partner's message arrives


@dataclass
class RoundResult:
    clients: int = 0
    connected: int = 0
    sent: int = 0  # send_message acked
    delivered: int = 0  # message_received pushed to the recipient
    receipts: int = 0  # message_delivered acked
    typing: int = 0  # user_typing acked
    pongs: int = 0  # ping answered
    lost: int = 0  # acked to the sender, not delivered within the deadline
    errors: Counter[str] = field(default_factory=Counter)  # error frames, by code
    failures: Counter[str] = field(default_factory=Counter)  # no connection, no reply in time…
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.errors or self.failures)


@dataclass
class Student:
    """One connected client and what happened to its own message and its partner's."""

    client: GatewayClient
    msg_id: str  # the client_msg_id of the message it sends
    incoming: asyncio.Future[Frame]  # its partner's message_received
    acked: bool = False  # its own message was acked
    got: bool = False  # its partner's message arrived in time
    refs: itertools.count[int] = field(default_factory=itertools.count)


def _error_counter(result: RoundResult) -> Callable[[Frame, float], None]:
    def tally(frame: Frame, _at: float) -> None:
        if frame.get("event") == "error":
            result.errors[str((frame.get("data") or {}).get("code"))] += 1

    return tally


async def _connect(
    connect: Connect, ws_url: str, user_id: str, token: str, deadlines: Deadlines
) -> GatewayClient | str:
    """The connected client, or why it is not."""
    try:
        return await asyncio.wait_for(connect(ws_url, token, user_id, False), deadlines.connect_s)
    except TimeoutError:
        return "connect: timeout"
    except (OSError, RuntimeError, websockets.WebSocketException) as exc:
        return f"connect: {type(exc).__name__}"


async def _reply(
    student: Student, event: str, data: dict[str, Any], deadlines: Deadlines, result: RoundResult
) -> Frame | None:
    """Send ``event`` with a ref and return its ack (or pong); None when it was refused (the
    error frame is counted by code as it arrives) or had no answer in time (a failure)."""
    ref = f"{event}-{next(student.refs)}"
    reply = student.client.expect(lambda f: f.get("ref") == ref and f.get("event") in REPLIES)
    try:
        await student.client.send(event, data, ref)
        frame = await asyncio.wait_for(reply, deadlines.reply_s)
    except TimeoutError:
        result.failures[f"{event}: no reply in {deadlines.reply_s:g} s"] += 1
        return None
    except (ConnectionError, websockets.ConnectionClosed):
        result.failures[f"{event}: connection lost"] += 1
        return None
    return None if frame.get("event") == "error" else frame


async def _converse(
    me: Student, partner_id: str, until: float, deadlines: Deadlines, result: RoundResult
) -> None:
    """Send one message, receipt the partner's, type, ping."""
    message = {"recipient_id": partner_id, "text": "soak", "client_msg_id": me.msg_id}
    if await _reply(me, "send_message", message, deadlines, result) is not None:
        me.acked = True
        result.sent += 1
    try:
        async with asyncio.timeout_at(until):
            frame = await me.incoming
    except TimeoutError:
        result.failures["message_received: none in time"] += 1
    except ConnectionError:
        result.failures["message_received: connection lost"] += 1
    else:
        me.got = True
        result.delivered += 1
        data = frame.get("data") or {}
        receipt = {"conversation_id": data.get("conversation_id"), "up_to_seq": data.get("seq")}
        if await _reply(me, "message_delivered", receipt, deadlines, result) is not None:
            result.receipts += 1
    typing = {"recipient_id": partner_id}
    if await _reply(me, "user_typing", typing, deadlines, result) is not None:
        result.typing += 1
    if await _reply(me, "ping", {}, deadlines, result) is not None:
        result.pongs += 1


def _student(client: GatewayClient, msg_id: str, partner_msg_id: str) -> Student:
    incoming = client.expect(
        lambda f: (
            f.get("event") == "message_received"
            and (f.get("data") or {}).get("client_msg_id") == partner_msg_id
        )
    )
    return Student(client, msg_id, incoming)


async def _close(client: GatewayClient) -> None:
    try:
        await asyncio.wait_for(client.close(), CLOSE_TIMEOUT_S)
    except (TimeoutError, OSError, websockets.WebSocketException):
        pass  # the socket is gone either way once the round ends


async def run_round(
    ws_url: str,
    users: list[tuple[str, str]],
    socketio: bool = False,
    deadlines: Deadlines | None = None,
) -> RoundResult:
    """One round with ``users`` (user id, token), all at once; an odd one out only connects,
    pings and leaves."""
    deadlines = deadlines or Deadlines()
    connect: Connect = SocketIOGatewayClient.connect if socketio else GatewayClient.connect
    result = RoundResult(clients=len(users))
    started = time.perf_counter()
    attempts = await asyncio.gather(
        *(_connect(connect, ws_url, user_id, token, deadlines) for user_id, token in users)
    )
    clients: list[GatewayClient | None] = []
    for attempt in attempts:
        if isinstance(attempt, str):
            result.failures[attempt] += 1
            clients.append(None)
        else:
            attempt.on_message = _error_counter(result)
            result.connected += 1
            clients.append(attempt)
    try:
        # expectations first, for every student, before anyone sends
        conversations: list[Awaitable[None]] = []
        pairs: list[tuple[Student, Student]] = []
        ids = [user_id for user_id, _ in users]
        for a, b in zip(range(0, len(users) - 1, 2), range(1, len(users), 2), strict=True):
            first, second = clients[a], clients[b]
            if first is None or second is None:
                continue
            pair = (
                _student(first, f"{ids[a]}-m", f"{ids[b]}-m"),
                _student(second, f"{ids[b]}-m", f"{ids[a]}-m"),
            )
            pairs.append(pair)
        until = asyncio.get_running_loop().time() + deadlines.deliver_s
        for one, other in pairs:
            conversations.append(_converse(one, other.client.user_id, until, deadlines, result))
            conversations.append(_converse(other, one.client.user_id, until, deadlines, result))
        paired = {id(s.client) for pair in pairs for s in pair}
        alone = [c for c in clients if c is not None and id(c) not in paired]
        for client in alone:
            student = Student(client, "", asyncio.get_running_loop().create_future())
            conversations.append(_ping_only(student, deadlines, result))
        await asyncio.gather(*conversations)
        for one, other in pairs:
            result.lost += (one.acked and not other.got) + (other.acked and not one.got)
    finally:
        await asyncio.gather(*(_close(c) for c in clients if c is not None))
        result.seconds = time.perf_counter() - started
    return result


async def _ping_only(student: Student, deadlines: Deadlines, result: RoundResult) -> None:
    if await _reply(student, "ping", {}, deadlines, result) is not None:
        result.pongs += 1
