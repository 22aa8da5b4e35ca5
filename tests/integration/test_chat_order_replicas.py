"""Per-conversation order with three chat replicas: senders each push a burst of numbered
messages at once (up to 16 in flight per connection), every conversation's commands go to one
partition with one active replica, so seq order is send order and the receiver is pushed the
messages in the order sent; the partitions are spread over the replicas; and a replica killed
mid-stream loses nothing acknowledged and breaks no order."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.partitions import conversation_id_for, partition_of
from tests.support.client import Frame, WsClient
from tests.support.stack import NO_RATE_LIMITS, Process, Stack, poll
from tests.support.users import connect_to_chat

PARTITIONS = 8
REPLICAS = 3
BURST = 120  # messages per sender
PER_REPLICA = 2  # conversations whose partition each replica owns
# Roomy limits: the test is about order, and a failover on a busy machine may take a while.
PATIENT = {"IM_SHED_AFTER_MS": "30000", "IM_REQUEST_TIMEOUT_S": "30", **NO_RATE_LIMITS}


def owner(sender: str, recipient: str) -> int:
    """The replica whose own partitions hold this conversation (p % REPLICAS)."""
    return partition_of(conversation_id_for(sender, recipient), PARTITIONS) % REPLICAS


def pairs() -> list[tuple[str, str]]:
    """Sender/recipient pairs, PER_REPLICA conversations owned by each replica."""
    chosen: list[tuple[str, str]] = []
    i = 0
    while len(chosen) < PER_REPLICA * REPLICAS:
        pair = (f"s{i}", f"r{i}")
        if sum(owner(*p) == owner(*pair) for p in chosen) < PER_REPLICA:
            chosen.append(pair)
        i += 1
    return chosen


@dataclass
class Burst:
    """One sender's numbered messages, sent without waiting for any ack."""

    client: WsClient
    sender: str
    recipient: str
    replies: dict[int, Frame] = field(default_factory=dict)

    @property
    def conversation_id(self) -> str:
        return conversation_id_for(self.sender, self.recipient)

    def ref(self, n: int) -> str:
        return f"{self.sender}-{n}"

    async def send(self, numbers: range = range(BURST)) -> None:
        for n in numbers:
            data = {"recipient_id": self.recipient, "text": f"{self.sender} {n}"}
            await self.client.send("send_message", {**data, "client_msg_id": f"m{n}"}, self.ref(n))

    def answered(self) -> int:
        refs = {self.ref(n): n for n in range(BURST)}
        for frame in self.client.frames:
            n = refs.get(str(frame.get("ref")))
            if n is not None and frame.get("event") in ("ack", "error"):
                self.replies[n] = frame
        return len(self.replies)

    async def all_answered(self) -> None:
        await self.client.wait_for(
            lambda _: self.answered() == BURST, timeout=90, what=f"{self.sender}'s replies"
        )

    def acked_seqs(self) -> list[int]:
        """The seq of each message, in the order sent (every one must be acknowledged)."""
        refused = [f for f in self.replies.values() if f["event"] != "ack"]
        assert not refused, refused[:3]
        return [self.replies[n]["data"]["seq"] for n in range(BURST)]


def start_replicas(stack: Stack) -> list[Process]:
    """Three identical replicas starting together (each takes the first free index); back
    once every one has joined the others' partitions as a standby. Ordered by index."""
    started = [
        stack.spawn_service(
            "chat",
            IM_CHAT_PARTITIONS=str(PARTITIONS),
            IM_REPLICAS=str(REPLICAS),
            IM_PARTITION_STANDBY_S="10",
        )
        for _ in range(REPLICAS)
    ]
    by_index: dict[int, Process] = {}
    for replica in started:
        stack.wait_logged(replica, "standing by for partitions", 60)
        index = re.search(r"chat is replica (\d+) of 3", replica.log())
        assert index is not None, replica.log()[-2000:]
        by_index[int(index.group(1))] = replica
    assert sorted(by_index) == list(range(REPLICAS)), "each replica has an index of its own"
    return [by_index[i] for i in range(REPLICAS)]


async def bursts_on(stack: Stack) -> tuple[list[Burst], dict[str, WsClient]]:
    gateway = stack.start_gateway(PATIENT, IM_CHAT_PARTITIONS=str(PARTITIONS))
    bursts, receivers = [], {}
    for sender, recipient in pairs():
        receivers[recipient] = await connect_to_chat(stack, gateway, recipient)
        bursts.append(Burst(await connect_to_chat(stack, gateway, sender), sender, recipient))
    # one conversation written from both ends at once
    first = bursts[0]
    back = Burst(receivers[first.recipient], first.recipient, first.sender)
    receivers[first.sender] = first.client
    return [*bursts, back], receivers


def pushed_in_order(burst: Burst, receiver: WsClient) -> list[str]:
    """The texts of ``burst``'s messages as the receiver got them, first push of each."""
    seen: dict[str, str] = {}
    for frame in receiver.frames:
        data: dict[str, Any] = frame.get("data") or {}
        if frame.get("event") == "message_received" and data.get("sender_id") == burst.sender:
            seen.setdefault(data["message_id"], data["text"])
    return list(seen.values())


async def check_order(bursts: list[Burst], receivers: dict[str, WsClient]) -> None:
    """Every message acknowledged; per sender, seqs rise in the order sent; per conversation,
    seqs are gap-free; each receiver was pushed each sender's messages in the order sent."""
    by_conversation: dict[str, list[int]] = {}
    for burst in bursts:
        seqs = burst.acked_seqs()
        assert seqs == sorted(seqs) and len(set(seqs)) == BURST, f"{burst.sender}: {seqs}"
        by_conversation.setdefault(burst.conversation_id, []).extend(seqs)
    for conversation_id, seqs in by_conversation.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), conversation_id
    sent = {b.sender: [f"{b.sender} {n}" for n in range(BURST)] for b in bursts}
    for burst in bursts:
        receiver = receivers[burst.recipient]

        def all_pushed(_: Frame, b: Burst = burst, r: WsClient = receiver) -> bool:
            return len(pushed_in_order(b, r)) == BURST

        await receiver.wait_for(
            all_pushed,
            timeout=30,
            what=f"{burst.sender}'s pushes",
        )
        assert pushed_in_order(burst, receiver) == sent[burst.sender], burst.sender


def acked_ids(bursts: list[Burst]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for burst in bursts:
        ids = {f["data"]["message_id"] for f in burst.replies.values()}
        found.setdefault(burst.conversation_id, set()).update(ids)
    return found


async def full_history(client: WsClient, conversation_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    data: dict[str, Any] = {"conversation_id": conversation_id, "limit": 100}
    while True:
        page = await client.ack("get_history", data)
        found = page["messages"] + found
        if not page["has_more"]:
            return found
        data["before_seq"] = page["messages"][0]["seq"]


def operations_written(replica: Process) -> int:
    """What the replica's writer committed (it says so when it stops)."""
    assert replica.terminate() == 0, replica.log()[-2000:]
    written = re.search(r"wrote (\d+) operations", replica.log())
    assert written is not None, replica.log()[-2000:]
    return int(written.group(1))


async def test_each_conversation_keeps_its_order_over_three_replicas(stack: Stack) -> None:
    replicas = start_replicas(stack)
    bursts, receivers = await bursts_on(stack)
    await asyncio.gather(*(b.send() for b in bursts))
    await asyncio.gather(*(b.all_answered() for b in bursts))
    await check_order(bursts, receivers)
    for client in receivers.values():
        await client.close()
    written = [operations_written(replica) for replica in replicas]
    # each replica ran its own share: the conversations of its partitions and nothing else
    # (receipts and reads write nothing here; list_conversations only reads)
    expected = [0] * REPLICAS
    for burst in bursts:
        expected[owner(burst.sender, burst.recipient)] += BURST
    assert written == expected, (written, expected)


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
async def test_a_replica_stopped_mid_stream_loses_nothing_and_keeps_the_order(
    stack: Stack, stop: str
) -> None:
    """SIGKILL: the broker hands the victim's partitions, and the commands it had not
    acknowledged, to a standby. SIGTERM: the victim finishes what it started, then leaves what
    it had not started to the standby."""
    replicas = start_replicas(stack)
    bursts, receivers = await bursts_on(stack)
    victim = 1
    owned = [b for b in bursts if owner(b.sender, b.recipient) == victim]
    # The first half, until the victim has answered some; then the second half, and the stop
    # right after it is written: however fast the victim is, it has commands in flight.
    half, share = BURST // 2, BURST * len(owned)
    await asyncio.gather(*(b.send(range(half)) for b in bursts))
    await poll(lambda: sum(b.answered() for b in owned) > 0, 60, "the victim's first answers")
    await asyncio.gather(*(b.send(range(half, BURST)) for b in bursts))
    answered_at_stop = sum(b.answered() for b in owned)
    if stop == "SIGKILL":
        replicas[victim].kill()
    else:
        assert await asyncio.to_thread(replicas[victim].terminate) == 0
    await asyncio.gather(*(b.all_answered() for b in bursts))
    assert answered_at_stop < share, "the victim's conversations were done"
    await check_order(bursts, receivers)
    # nothing acknowledged lost: each history holds exactly the acknowledged messages
    for conversation_id, acked in acked_ids(bursts).items():
        reader = next(b.client for b in bursts if b.conversation_id == conversation_id)
        history = await full_history(reader, conversation_id)
        assert [m["seq"] for m in history] == list(range(1, len(acked) + 1))
        assert {m["message_id"] for m in history} == acked
    for client in receivers.values():
        await client.close()
    survivors = [r for i, r in enumerate(replicas) if i != victim]
    assert all(operations_written(r) > 0 for r in survivors)


async def test_a_gateway_with_more_partitions_than_chat_is_refused_not_lost(
    stack: Stack,
) -> None:
    """Gateway and chat disagree on IM_CHAT_PARTITIONS: a command for a partition without a
    queue is refused at once (never executed: retry_after_ms), not dropped in silence."""
    stack.start_service("chat", IM_CHAT_PARTITIONS="8")
    gateway = stack.start_gateway(NO_RATE_LIMITS, IM_CHAT_PARTITIONS="16")
    alice = await WsClient.connect(gateway.ws, stack.token("alice"))
    await alice.event("connected")
    peers = [f"p{i}" for i in range(40)]
    lost = next(p for p in peers if partition_of(conversation_id_for("alice", p), 16) >= 8)
    kept = next(p for p in peers if partition_of(conversation_id_for("alice", p), 16) < 8)
    reply = await alice.request("send_message", {"recipient_id": lost, "text": "x"}, timeout=3)
    assert reply["event"] == "error" and reply["data"]["code"] == "unavailable", reply
    assert reply["data"]["retry_after_ms"] == 1000
    assert (await alice.ack("send_message", {"recipient_id": kept, "text": "y"}))["seq"] == 1
    await alice.close()
