"""A connect storm (PROTOCOL §1, issue "connection scale"): many users with pending messages
connect at once. The gateway sets up a few at a time and closes the rest with 1013 and a
``retry_after_ms`` hint; clients that honour it all get in, each with the snapshot and every
message that waited for them."""

from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import dataclass, field

import websockets
from websockets.exceptions import ConnectionClosed

from tests.support.client import WsClient, check_frame
from tests.support.stack import NO_RATE_LIMITS, Stack

USERS = 80
HINT = re.compile(r"retry_after_ms=(\d+)")


@dataclass
class Arrival:
    client: WsClient
    hints_ms: list[int] = field(default_factory=list)


async def connect_honouring_hints(url: str, token: str, deadline_s: float = 60) -> Arrival:
    """Connect; on close 1013 wait the hinted time (plus jitter, as the SDK does) and retry."""
    hints: list[int] = []
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    while loop.time() < give_up:
        socket = await websockets.connect(f"{url}?token={token}", max_size=None)
        try:
            first = await socket.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1013, exc
            found = HINT.search(exc.rcvd.reason)
            assert found, f"1013 without a retry_after_ms hint: {exc.rcvd.reason!r}"
            hints.append(int(found.group(1)))
            await asyncio.sleep(hints[-1] / 1000 * random.uniform(1.0, 1.5))  # honour the hint
            continue
        client = WsClient(socket)  # reads from here on; the first frame goes in front
        frame = json.loads(first)
        check_frame(frame)
        client.frames.insert(0, frame)
        return Arrival(client, hints)
    raise AssertionError(f"not admitted within {deadline_s}s (hints {hints})")


async def test_a_storm_of_users_with_pending_messages_all_get_in_with_everything(
    stack: Stack,
) -> None:
    stack.start_service("presence")
    stack.start_service("chat")
    gateway = stack.start_gateway(NO_RATE_LIMITS, IM_MAX_PENDING_CONNECTS="4")
    mentor = await WsClient.connect(gateway.ws, stack.token("m1", "mentor", "Maya"))
    await mentor.event("mentor_status_snapshot")
    students = [f"s{i}" for i in range(USERS)]
    acks = await asyncio.gather(
        *(mentor.ack("send_message", {"recipient_id": s, "text": f"for {s}"}) for s in students)
    )
    assert len({a["message_id"] for a in acks}) == USERS

    arrivals = await asyncio.gather(
        *(connect_honouring_hints(gateway.ws, stack.token(s)) for s in students)
    )

    hints = [h for arrival in arrivals for h in arrival.hints_ms]
    assert hints, "the gate let every socket in at once"
    assert len(set(hints)) > len(hints) // 2, f"the refused were not spread out: {hints}"
    for student, arrival in zip(students, arrivals, strict=True):
        client = arrival.client
        assert client.frames[0]["event"] == "connected"
        message = await client.event("message_received", timeout=20)
        assert message["data"]["text"] == f"for {student}"
        await client.until_mentor("m1", timeout=20, online=True)
        assert client.count("message_received") == 1, "caught up exactly once"
    for arrival in arrivals:
        await arrival.client.close()
    await mentor.close()
