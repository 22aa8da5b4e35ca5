"""Chat under failure and scale-out: a SIGKILL in the middle of 1,000 messages, two replicas
on one database. Acknowledged means stored exactly once and delivered; seqs stay gap-free."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from services.chat.domain import conversation_id_for
from tests.support.client import Frame, WsClient, full_history
from tests.support.postgres import Databases
from tests.support.stack import NO_RATE_LIMITS, Stack
from tests.support.users import connect_to_chat

WINDOW = 200  # messages in flight per sender
_refs = itertools.count(1)

# The catch-up pushes the newest IM_CATCHUP_LIMIT messages; these tests check it has them all.
WHOLE_CATCH_UP = {"IM_CATCHUP_LIMIT": "10000"}


class Sender:
    """Sends messages with client_msg_ids, pipelined, and resends (same id) whatever was not
    acknowledged — what a real client does after an ``unavailable`` or a timeout."""

    def __init__(
        self, client: WsClient, recipient_id: str, prefix: str, keyed: bool = True
    ) -> None:
        self.client = client
        self.keyed = keyed  # without client_msg_id a client cannot resend safely, so it won't
        self.recipient_id = recipient_id
        self.prefix = prefix
        self.refs: dict[str, str] = {}  # ref → client_msg_id
        self.acks: dict[str, list[dict[str, Any]]] = {}  # client_msg_id → every ack for it
        self.resent = 0
        self._replies: dict[str, Frame] = {}
        self._scanned = 0

    def replies(self) -> int:
        """How many of the requests sent so far have their reply (incremental scan)."""
        frames = self.client.frames
        for frame in frames[self._scanned :]:
            if frame.get("event") in ("ack", "error") and frame.get("ref") in self.refs:
                self._replies[frame["ref"]] = frame
        self._scanned = len(frames)
        return len(self._replies)

    def _at_least(self, count: int) -> Callable[[Frame], bool]:
        return lambda _frame: self.replies() >= count

    async def _send(self, key: str) -> None:
        ref = f"{self.prefix}-{next(_refs)}"
        self.refs[ref] = key
        data = {"recipient_id": self.recipient_id, "text": f"{self.prefix} {key}"}
        if self.keyed:
            data["client_msg_id"] = key
        await self.client.send("send_message", data, ref)

    async def run(self, count: int, on_progress: Any = None) -> None:
        keys = [f"{self.prefix}{i}" for i in range(count)]
        for i, key in enumerate(keys):
            await self._send(key)
            if i >= WINDOW:
                await self.client.wait_for(self._at_least(i - WINDOW), timeout=60, what="a window")
            if on_progress is not None:
                await on_progress(i)
        while True:
            await self.client.wait_for(
                lambda f: self.replies() == len(self.refs), timeout=60, what="all replies"
            )
            self.acks = {}
            unknown: set[str] = set()  # told "outcome unknown" (a timeout), not "refused"
            for ref, frame in self._replies.items():
                if frame["event"] == "ack":
                    self.acks.setdefault(self.refs[ref], []).append(frame["data"])
                else:
                    assert frame["data"]["code"] == "unavailable", frame
                    if "retry_after_ms" not in frame["data"]:
                        unknown.add(self.refs[ref])
            missing = [k for k in keys if k not in self.acks]
            # A refusal (unavailable with retry_after_ms) was never executed, so even a
            # client without client_msg_id may resend it; an unknown outcome it may not.
            unsafe = unknown.difference(self.acks)
            assert self.keyed or not unsafe, f"outcome unknown: {sorted(unsafe)}"
            if not missing:
                return
            self.resent += len(missing)
            for key in missing:
                await self._send(key)

    def first_acks(self) -> dict[str, dict[str, Any]]:
        for key, acks in self.acks.items():
            assert all(a == acks[0] for a in acks), f"{key} acknowledged differently: {acks}"
        return {key: acks[0] for key, acks in self.acks.items()}


def received_ids(client: WsClient) -> list[str]:
    return [f["data"]["message_id"] for f in client.frames if f["event"] == "message_received"]


async def test_a_crash_loses_and_doubles_no_acknowledged_message(stack: Stack) -> None:
    total = 1000
    chat = stack.start_service("chat", WHOLE_CATCH_UP)
    # a short request timeout: commands caught in the crash time out, and the client resends
    gateway = stack.start_gateway(NO_RATE_LIMITS, IM_REQUEST_TIMEOUT_S="1")
    alice = await connect_to_chat(stack, gateway, "alice")
    alice_tab = await connect_to_chat(stack, gateway, "alice")
    bob = await connect_to_chat(stack, gateway, "bob")
    sender = Sender(alice, "bob", "a")
    restarted: list[asyncio.Task[Any]] = []

    async def restart_when_requests_fail() -> None:
        await alice.event("error", code="unavailable", timeout=30)
        await asyncio.to_thread(partial(stack.start_service, "chat", WHOLE_CATCH_UP))

    async def crash_at_300(i: int) -> None:
        if i == 300:
            chat.kill()  # SIGKILL with up to WINDOW commands in flight
            restarted.append(asyncio.create_task(restart_when_requests_fail()))

    await sender.run(total, crash_at_300)
    await asyncio.gather(*restarted)
    acks = sender.first_acks()
    cid = conversation_id_for("alice", "bob")

    # every message acknowledged once, with its own id, and the seqs are exactly 1..total
    assert len(acks) == total
    assert len({a["message_id"] for a in acks.values()}) == total
    assert sorted(a["seq"] for a in acks.values()) == list(range(1, total + 1))
    # stored exactly once: what history shows is what was acknowledged
    history = await full_history(bob, cid)
    assert [m["seq"] for m in history] == list(range(1, total + 1))
    assert {m["client_msg_id"]: m["message_id"] for m in history} == {
        k: a["message_id"] for k, a in acks.items()
    }
    # live pushes: only acknowledged messages. A redelivered command pushes its message
    # again (its first pushes may have died with the process), so an id may repeat: clients
    # dedupe by message_id. A push lost for good shows as a seq gap the client fills with
    # sync/history, or gets on its next connection.
    for client in (bob, alice_tab):
        seen = Counter(received_ids(client))
        assert seen and set(seen) <= {a["message_id"] for a in acks.values()}
    # delivered: bob's next connection catches up on everything he did not mark, once each
    phone = await connect_to_chat(stack, gateway, "bob")
    await phone.wait_for(
        lambda f: len(received_ids(phone)) >= total, timeout=60, what="the catch-up"
    )
    catch_up = [f["data"] for f in phone.frames if f["event"] == "message_received"]
    assert [m["seq"] for m in catch_up] == list(range(1, total + 1))
    assert [m["message_id"] for m in catch_up] == [m["message_id"] for m in history]
    assert not chat.alive() and all(p.alive() for p in stack.processes[-1:])
    assert sender.resent > 0, "no command was caught in the crash"
    for client in (alice, alice_tab, bob, phone):
        await client.close()


async def test_a_crash_does_not_double_messages_sent_without_client_msg_id(stack: Stack) -> None:
    """Commands the killed process had committed but not acknowledged come back to the new
    one; each still makes one message (the command's own id is its idempotency key)."""
    total = 600
    chat = stack.start_service("chat")
    gateway = stack.start_gateway(NO_RATE_LIMITS)
    alice, bob = (
        await connect_to_chat(stack, gateway, "alice"),
        await connect_to_chat(stack, gateway, "bob"),
    )
    sender = Sender(alice, "bob", "n", keyed=False)
    restarted: list[asyncio.Task[Any]] = []

    async def crash_midway(i: int) -> None:
        if i == total // 2:  # the window is full: commands at every stage of their handling
            chat.kill()
            restarted.append(asyncio.create_task(asyncio.to_thread(stack.start_service, "chat")))

    await sender.run(total, crash_midway)
    await asyncio.gather(*restarted)
    acks = sender.first_acks()
    assert len(acks) == total and len({a["message_id"] for a in acks.values()}) == total
    history = await full_history(bob, conversation_id_for("alice", "bob"))
    assert sorted(m["text"] for m in history) == sorted(f"n n{i}" for i in range(total))
    assert [m["seq"] for m in history] == list(range(1, total + 1))
    assert {m["message_id"] for m in history} == {a["message_id"] for a in acks.values()}
    assert set(received_ids(bob)) <= {a["message_id"] for a in acks.values()}
    for client in (alice, bob):
        await client.close()


async def test_two_replicas_keep_seqs_gap_free(stack: Stack, databases: Databases) -> None:
    each = 300
    # Each replica is active on its own half of chat's partitions: alice-bob's conversation
    # is in one half, alice-grace's in the other (see test_chat_order_replicas.py).
    partitions = {"IM_CHAT_PARTITIONS": "8"}
    replicas = [
        stack.spawn_service("chat", IM_REPLICAS="2", IM_REPLICA_INDEX=str(i), **partitions)
        for i in (0, 1)
    ]
    for replica in replicas:
        stack.wait_logged(replica, "consuming")
    gateway = stack.start_gateway(partitions, NO_RATE_LIMITS)
    alice, bob, grace = [
        await connect_to_chat(stack, gateway, u) for u in ("alice", "bob", "grace")
    ]
    senders = [Sender(alice, "bob", "a"), Sender(bob, "alice", "b"), Sender(grace, "alice", "c")]
    await asyncio.gather(*(s.run(each) for s in senders))

    ab, ac = conversation_id_for("alice", "bob"), conversation_id_for("alice", "grace")
    acked = {k: a for s in senders for k, a in s.first_acks().items()}
    assert len(acked) == 3 * each
    assert len({a["message_id"] for a in acked.values()}) == 3 * each
    for cid, count in ((ab, 2 * each), (ac, each)):
        seqs = sorted(a["seq"] for a in acked.values() if a["conversation_id"] == cid)
        assert seqs == list(range(1, count + 1)), f"{cid}: gaps or duplicates"
        history = await full_history(alice, cid)
        assert [m["seq"] for m in history] == list(range(1, count + 1))
        assert {m["message_id"] for m in history} == {
            a["message_id"] for a in acked.values() if a["conversation_id"] == cid
        }
    for client in (alice, bob, grace):
        await client.close()
    # both replicas took part (each reports what its writer committed when it stops)
    for replica in replicas:
        assert replica.terminate() == 0
        written = re.search(r"wrote (\d+) operations in (\d+) batches", replica.log())
        assert written is not None and int(written.group(1)) > 0, replica.log()[-2000:]
        assert f"schema at the newest revision on {databases.kind}" in replica.log()


async def test_sigterm_finishes_the_commands_in_hand(stack: Stack) -> None:
    chat = stack.start_service("chat")
    gateway = stack.start_gateway(NO_RATE_LIMITS)
    alice = await connect_to_chat(stack, gateway, "alice")
    total = 200
    for i in range(total):
        await alice.send("send_message", {"recipient_id": "bob", "text": f"t{i}"}, f"t{i}")
    await alice.wait_for(
        lambda f: f.get("event") == "ack" and f.get("ref") == "t0", timeout=10, what="a first ack"
    )
    assert chat.terminate() == 0
    assert "finished the commands in hand" in chat.log(), chat.log()[-2000:]

    def replies() -> list[Frame]:
        return [
            f
            for f in alice.frames
            if f.get("event") in ("ack", "error") and str(f.get("ref")).startswith("t")
        ]

    stack.start_service("chat")  # the rest was requeued, never half done
    await alice.wait_for(
        lambda f: len(replies()) >= total, timeout=30, what="a reply to every message"
    )
    answered = replies()
    assert all(f["event"] == "ack" for f in answered), [f for f in answered if f["event"] != "ack"]
    assert len({f["data"]["seq"] for f in answered}) == total
