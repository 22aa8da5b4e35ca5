"""Fuzz (issue "Hostile input"): over 10,000 hostile frames from a fixed seed, over real
WebSockets, against the whole stack (gateway, presence, chat, calls, help on a real broker).

Per PROTOCOL §2 every frame whose ``ref`` can be read gets exactly one reply with it, every
other frame exactly one ``error`` with ``"ref": null`` (a ``ping`` without ``ref`` one
``pong``); every error code is one of the protocol's; no connection is closed (the one frame
over the hard limit closes its own socket with 1009); no process dies or logs an error; and
the system still works afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from shared.protocol.registry import CLIENT_EVENTS
from tests.support.client import WsClient
from tests.support.hostile import (
    HARD_LIMIT_BYTES,
    Expect,
    Fuzzer,
    Generated,
    IdPool,
    ReplyTally,
    bad_log_lines,
)
from tests.support.stack import NO_RATE_LIMITS, Gateway, Stack, poll
from tests.support.users import connect

SEED = 20261201
FRAMES_PER_CONNECTION = 2_600  # four connections: 10,400 frames
CHUNK = 500  # frames sent back to back before their replies are awaited
CHUNK_DEADLINE_S = 30.0  # > IM_REQUEST_TIMEOUT_S: by then every command was answered somehow

# (user id, role): two students and two mentors; every fuzzer also aims at the others' ids
FUZZ_USERS = [
    ("fz-student-1", "student"),
    ("fz-student-2", "student"),
    ("fz-mentor-1", "mentor"),
    ("fz-mentor-2", "mentor"),
]


@pytest.fixture
def gateway(stack: Stack) -> Gateway:
    stack.env_overrides.update(NO_RATE_LIMITS)
    for service in ("presence", "chat", "calls", "help"):
        stack.start_service(service)
    return stack.start_gateway()


def _show(raw: str | bytes, limit: int = 300) -> str:
    return repr(raw[:limit]) + (f"... ({len(raw)} chars)" if len(raw) > limit else "")


class Driver:
    """One fuzzed connection: sends chunks of frames, then waits for all their replies."""

    def __init__(self, client: WsClient, fuzzer: Fuzzer, pool: IdPool) -> None:
        self.client = client
        self.fuzzer = fuzzer
        self.pool = pool
        self.tally = ReplyTally()
        self.sent: dict[str, str | bytes] = {}  # ref → the frame, to show a failure
        self.kinds: Counter[str] = Counter()

    async def send(self, generated: Generated) -> None:
        self.tally.expect(generated)
        self.kinds[generated.kind] += 1
        if generated.expect not in (Expect.NULL_ERROR, Expect.NULL_PONG):
            self.sent[generated.expect] = generated.raw
        await self.client.connection.send(generated.raw)

    def settled(self) -> bool:
        self.tally.consume(self.client.frames, self.pool.learn)
        return self.tally.settled()

    async def settle(self, what: str) -> None:
        try:
            await poll(self.settled, CHUNK_DEADLINE_S, what)
        except AssertionError:
            missing = self.tally.missing()
            shown = [f"{ref!r}: {_show(self.sent[ref])}" for ref in missing[:5]]
            raise AssertionError(
                f"{what}: {len(missing)} frames without a reply (connection closed: "
                f"{self.client.closed_code}); null errors {self.tally.null_errors}/"
                f"{self.tally.null_errors_expected}, null pongs {self.tally.null_pongs}/"
                f"{self.tally.null_pongs_expected}; e.g.\n" + "\n".join(shown)
            ) from None

    async def run(self, frames: int) -> None:
        for start in range(0, frames, CHUNK):
            for _ in range(min(CHUNK, frames - start)):
                await self.send(self.fuzzer.next())
            await self.settle(f"replies to frames {start}..{start + CHUNK} of {self.fuzzer.tag}")

    async def barrier(self) -> None:
        """One request to each service and a ping, answered after anything still in flight
        for this connection: a second reply to an earlier ref would show by then."""
        for n, (event, data) in enumerate(
            [
                ("list_conversations", {}),
                ("get_mentors", {}),
                ("list_help_requests", {}),
                ("end_call", {"call_id": "no-such-call"}),
                ("ping", {}),
            ]
        ):
            ref = f"{self.fuzzer.tag}-barrier-{n}"
            raw = json.dumps({"event": event, "data": data, "ref": ref})
            await self.send(Generated(raw, ref, "barrier"))
        await self.settle(f"the barrier of {self.fuzzer.tag}")


async def test_ten_thousand_hostile_frames(gateway: Gateway, stack: Stack) -> None:
    began = time.monotonic()
    clients = [await connect(stack, gateway, user, role) for user, role in FUZZ_USERS]
    pool = IdPool(users=[user for user, _ in FUZZ_USERS] + ["fz-never-connected"])
    drivers = [
        Driver(client, Fuzzer(SEED * 10 + i, user, pool, f"c{i}"), pool)
        for i, (client, (user, _)) in enumerate(zip(clients, FUZZ_USERS, strict=True))
    ]
    await asyncio.gather(*(d.run(FRAMES_PER_CONNECTION) for d in drivers))

    # The one documented close: a frame beyond the hard limit (1 MiB) closes its own socket.
    doomed = await connect(stack, gateway, "fz-student-1", "student")
    await doomed.send_raw(json.dumps({"event": "ping", "ref": "big", "x": "z" * HARD_LIMIT_BYTES}))
    await poll(lambda: doomed.closed_code is not None, 10, "the oversized socket to close")
    assert doomed.closed_code == 1009, doomed.closed_code
    assert not [f for f in doomed.frames if f.get("ref") == "big"]

    await asyncio.gather(*(d.barrier() for d in drivers))
    kinds = sum((d.kinds for d in drivers), Counter())
    total = sum(kinds.values())
    assert total >= 10_000
    not_sent = {e for e in CLIENT_EVENTS if not kinds[f"event:{e}"]}
    assert not not_sent, f"never fuzzed: {not_sent}"

    codes: Counter[str] = Counter()
    for driver in drivers:
        tally, tag = driver.tally, driver.fuzzer.tag
        codes.update(tally.codes)
        duplicates = tally.duplicates()
        assert not duplicates, {
            ref: ([f["event"] for f in got], _show(driver.sent[ref]))
            for ref, got in list(duplicates.items())[:5]
        }
        assert not tally.strays, f"{tag}: replies to nothing sent: {tally.strays[:5]}"
        assert not tally.bad_codes, f"{tag}: codes outside PROTOCOL §2: {tally.bad_codes[:5]}"
        assert tally.null_errors == tally.null_errors_expected, (tag, tally.null_errors)
        assert tally.null_pongs == tally.null_pongs_expected, (tag, tally.null_pongs)
        # `internal` is a protocol code, but for a client's input it means a handler crashed.
        internal = [
            (ref, _show(driver.sent[ref]))
            for ref, got in tally.replies.items()
            if got[0].get("event") == "error" and got[0]["data"]["code"] == "internal"
        ]
        assert not internal, f"{tag}: internal errors for {internal[:5]}"
        # Apart from the 1009 above, no connection was closed.
        assert driver.client.closed_code is None, (tag, driver.client.closed_code)
        assert (await driver.client.request("ping", {}))["event"] == "pong"

    for process in stack.processes:
        assert process.alive(), f"{process.name} died:\n{process.log()[-3000:]}"
        problems = bad_log_lines(process.log().splitlines())
        assert not problems, f"{process.name} logged:\n" + "\n".join(problems[:20])

    # Still works: a message between two fresh users arrives, and a ping gets its pong.
    alice = await connect(stack, gateway, "fz-alice", "student")
    bob = await connect(stack, gateway, "fz-bob", "mentor")
    sent = await alice.ack("send_message", {"recipient_id": "fz-bob", "text": "still here?"})
    received = await bob.event("message_received", message_id=sent["message_id"])
    assert received["data"]["text"] == "still here?"
    assert received["data"]["sender_id"] == "fz-alice"
    assert (await alice.request("ping", {}))["event"] == "pong"

    accepted = Counter(
        d.tally.expected[ref]
        for d in drivers
        for ref, got in d.tally.replies.items()
        if got[0]["event"] in ("ack", "pong")
    )
    print(
        f"\nfuzz: {total} frames in {time.monotonic() - began:.1f}s; kinds "
        f"{dict(kinds.most_common(6))}; "
        f"error codes {dict(codes)}; acks {dict(accepted)}"
    )
    for client in [*clients, alice, bob]:
        await client.close()
