"""Chat end to end: real broker, gateway and chat processes, real WebSockets (PROTOCOL §4)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from services.chat.domain import conversation_id_for
from shared.protocol.chat import ChatMessage, ConversationList, History, MessageStatus
from tests.support.client import WsClient, bearer
from tests.support.postgres import Databases
from tests.support.stack import NO_RATE_LIMITS, Gateway, Stack
from tests.support.users import connect_to_chat

MESSAGE_FIELDS = set(ChatMessage.model_fields)
Connect = Callable[..., Awaitable[WsClient]]


@pytest.fixture
def gateway(stack: Stack) -> Gateway:
    """Chat and a gateway, on the test's own stack."""
    stack.start_service("chat")
    return stack.start_gateway()


@pytest.fixture
async def connect(stack: Stack) -> AsyncIterator[Connect]:
    """Connects a user to chat through the test's latest gateway (see ``connect_to_chat``);
    what it connected is closed at the end."""
    opened: list[WsClient] = []

    async def connect(user: str, name: str | None = None) -> WsClient:
        opened.append(await connect_to_chat(stack, stack.gateways[-1], user, name))
        return opened[-1]

    yield connect
    for client in opened:
        await client.close()


def received(client: WsClient, **match: Any) -> list[dict[str, Any]]:
    return [
        f["data"]
        for f in client.frames
        if f.get("event") == "message_received"
        and all(f["data"].get(k) == v for k, v in match.items())
    ]


async def test_a_conversation_with_history(
    stack: Stack, gateway: Gateway, connect: Connect
) -> None:
    alice = await connect("alice", "Alice A.")
    alice_laptop = await connect("alice")
    bob = await connect("bob")

    ack = await alice.ack(
        "send_message",
        {"recipient_id": "bob", "text": "Hi Bob!", "client_msg_id": "c1", "call_id": "call-9"},
    )
    cid = conversation_id_for("alice", "bob")
    assert set(ack) == {"message_id", "conversation_id", "seq", "sent_at", "client_msg_id"}
    assert (ack["conversation_id"], ack["seq"], ack["client_msg_id"]) == (cid, 1, "c1")
    pushed = (await bob.event("message_received", message_id=ack["message_id"]))["data"]
    assert set(pushed) == MESSAGE_FIELDS
    assert pushed == {
        "message_id": ack["message_id"],
        "conversation_id": cid,
        "seq": 1,
        "sender_id": "alice",
        "sender_name": "Alice A.",
        "recipient_id": "bob",
        "text": "Hi Bob!",
        "sent_at": ack["sent_at"],
        "client_msg_id": "c1",
        "call_id": "call-9",
        "edited_at": None,
        "deleted_at": None,
    }
    # the sender's other connection sees it too; the connection that sent it only gets the ack
    await alice_laptop.event("message_received", message_id=ack["message_id"])

    # bob answers by conversation id; a sender_id in data is ignored
    reply = await bob.ack(
        "send_message", {"conversation_id": cid, "text": "Hello!", "sender_id": "alice"}
    )
    assert reply["seq"] == 2 and reply["client_msg_id"] is None
    got = (await alice.event("message_received", message_id=reply["message_id"]))["data"]
    assert (got["sender_id"], got["recipient_id"], got["text"]) == ("bob", "alice", "Hello!")
    for i in range(3, 8):
        await alice.ack("send_message", {"recipient_id": "bob", "text": f"message {i}"})
    await bob.event("message_received", seq=7)
    assert received(alice) == [got]  # alice never gets her own messages back on this connection

    history = await bob.ack("get_history", {"conversation_id": cid, "limit": 3})
    History.model_validate(history)
    assert [m["seq"] for m in history["messages"]] == [5, 6, 7] and history["has_more"] is True
    older = await bob.ack("get_history", {"conversation_id": cid, "before_seq": 5, "limit": 3})
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4] and older["has_more"] is True
    oldest = await bob.ack("get_history", {"conversation_id": cid, "before_seq": 2})
    assert [m["seq"] for m in oldest["messages"]] == [1] and oldest["has_more"] is False
    assert oldest["messages"][0] == {**pushed, "status": "sent"}
    everything = await alice.ack("get_history", {"conversation_id": cid})
    assert [m["seq"] for m in everything["messages"]] == list(range(1, 8))
    assert everything["has_more"] is False

    # the HTTP routes show exactly what the events answer
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        auth = bearer(stack.token("bob"))
        page = await http.get(
            f"/api/conversations/{cid}/messages", params={"limit": 3}, headers=auth
        )
        assert page.status_code == 200 and page.json() == history
        listing = await http.get("/api/conversations", headers=auth)
        assert listing.status_code == 200
    assert listing.json() == await bob.ack("list_conversations")
    conversations = ConversationList.model_validate(listing.json()).conversations
    assert [(c.conversation_id, c.peer_id, c.unread_count) for c in conversations] == [
        (cid, "alice", 6)
    ]
    assert conversations[0].last_message is not None
    assert conversations[0].last_message.seq == 7


async def test_an_offline_recipient_gets_everything_once_when_connecting(
    gateway: Gateway, connect: Connect
) -> None:
    alice = await connect("alice")
    carol = await connect("carol")
    for i in range(1, 6):
        await alice.ack("send_message", {"recipient_id": "bob", "text": f"a{i}"})
    for i in range(1, 3):
        await carol.ack("send_message", {"recipient_id": "bob", "text": f"c{i}"})
    from_alice = conversation_id_for("alice", "bob")
    from_carol = conversation_id_for("bob", "carol")

    bob = await connect("bob")
    await bob.event("message_received", conversation_id=from_alice, seq=5)
    await bob.event("message_received", conversation_id=from_carol, seq=2)
    assert [m["text"] for m in received(bob, conversation_id=from_alice)] == [
        f"a{i}" for i in range(1, 6)
    ]
    assert [m["text"] for m in received(bob, conversation_id=from_carol)] == ["c1", "c2"]

    # bob marks what he got; the next connection only catches up on the rest
    await bob.ack("message_delivered", {"conversation_id": from_alice, "up_to_seq": 3})
    await bob.ack("message_read", {"conversation_id": from_carol, "up_to_seq": 2})
    await bob.close()
    phone = await connect("bob")
    await phone.event("message_received", conversation_id=from_alice, seq=5)
    # a message sent now arrives live, after the catch-up
    live = await alice.ack("send_message", {"recipient_id": "bob", "text": "a6"})
    await phone.event("message_received", message_id=live["message_id"])
    assert [m["seq"] for m in received(phone)] == [4, 5, 6]

    # sync: ack first, then every newer message of the named conversations, to this connection
    laptop = await connect("bob")
    await laptop.event("message_received", seq=6)  # its own catch-up
    before = len(laptop.frames)
    reply = await laptop.request("sync", {"since": {from_alice: 4, from_carol: 0}})
    assert reply["event"] == "ack" and reply["data"] == {}
    await laptop.event("message_received", conversation_id=from_carol, seq=2)
    synced = laptop.frames[before:]
    assert synced[0] is reply, "the ack comes before the synced messages"
    assert [(f["data"]["conversation_id"], f["data"]["seq"]) for f in synced[1:]] == sorted(
        [(from_alice, 5), (from_alice, 6), (from_carol, 1), (from_carol, 2)]
    )
    await phone.ack("list_conversations")  # phone got nothing from laptop's sync
    assert [m["seq"] for m in received(phone)] == [4, 5, 6]


async def test_receipts_reach_the_sender_and_history_shows_status(
    gateway: Gateway, connect: Connect
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    cid = conversation_id_for("alice", "bob")
    for i in range(1, 5):
        await alice.ack("send_message", {"recipient_id": "bob", "text": f"m{i}"})
    await bob.ack("send_message", {"recipient_id": "alice", "text": "reply"})  # seq 5

    assert await bob.ack("message_delivered", {"conversation_id": cid, "up_to_seq": 3}) == {}
    status = (await alice.event("message_status", status="delivered"))["data"]
    MessageStatus.model_validate(status)
    assert {k: v for k, v in status.items() if k != "at"} == {
        "conversation_id": cid,
        "up_to_seq": 3,
        "status": "delivered",
        "by_user_id": "bob",
    }
    await bob.ack("message_read", {"conversation_id": cid, "up_to_seq": 2})
    await alice.event("message_status", status="read", up_to_seq=2)
    # backwards or repeated: acknowledged, nothing moves, nobody is told
    await bob.ack("message_delivered", {"conversation_id": cid, "up_to_seq": 1})
    await bob.ack("message_read", {"conversation_id": cid, "up_to_seq": 2})
    await bob.ack("message_read", {"conversation_id": cid, "up_to_seq": 4})  # read ⇒ delivered
    await alice.event("message_status", status="read", up_to_seq=4)
    assert [
        (f["data"]["status"], f["data"]["up_to_seq"])
        for f in alice.frames
        if f["event"] == "message_status"
    ] == [("delivered", 3), ("read", 2), ("read", 4)]

    history = await alice.ack("get_history", {"conversation_id": cid})
    assert [(m["seq"], m["status"]) for m in history["messages"]] == [
        (1, "read"),
        (2, "read"),
        (3, "read"),
        (4, "read"),
        (5, "sent"),  # bob's own message: alice has not marked it
    ]
    await alice.ack("message_delivered", {"conversation_id": cid, "up_to_seq": 5})
    await bob.event("message_status", status="delivered", up_to_seq=5, by_user_id="alice")
    history = await bob.ack("get_history", {"conversation_id": cid, "before_seq": 6, "limit": 1})
    assert history["messages"][0]["status"] == "delivered"
    listing = await bob.ack("list_conversations")
    assert listing["conversations"][0]["unread_count"] == 0
    assert (await alice.ack("list_conversations"))["conversations"][0]["unread_count"] == 1


async def test_typing_is_relayed_and_expires_unless_refreshed(
    stack: Stack, connect: Connect
) -> None:
    timeout_s = 1.5
    stack.start_service("chat", IM_TYPING_TIMEOUT_S=str(timeout_s))
    stack.start_gateway()
    alice = await connect("alice", "Alice A.")
    bob = await connect("bob")
    cid = conversation_id_for("alice", "bob")

    def stops() -> int:
        return bob.count("user_stopped_typing")

    assert await alice.ack("user_typing", {"recipient_id": "bob"}) == {}
    typing = await bob.event("user_typing")
    assert typing["data"] == {"conversation_id": cid, "user_id": "alice", "user_name": "Alice A."}
    # the time passing is what is under test here, not a condition to wait for
    await asyncio.sleep(timeout_s / 3)
    await alice.ack("user_typing", {"recipient_id": "bob"})  # refreshed: the first timer is void
    refreshed = time.monotonic()
    await bob.wait_for(lambda f: f["event"] == "user_typing" and bob.count("user_typing") == 2)
    stopped = await bob.event("user_stopped_typing", timeout=timeout_s + 10)
    assert time.monotonic() - refreshed >= timeout_s * 0.9, "expired the refreshed typing"
    assert stopped["data"] == typing["data"] and stops() == 1

    # an explicit stop is relayed at once; its typing's timer then finds nothing to end
    # (a conversation is named by id once it has a message)
    assert await alice.error("user_typing", {"conversation_id": cid}) == "not_found"
    await bob.ack("send_message", {"recipient_id": "alice", "text": "hello"})
    await alice.ack("user_typing", {"conversation_id": cid})
    await alice.ack("user_stopped_typing", {"conversation_id": cid})
    await bob.wait_for(lambda f: stops() == 2, what="the explicit stop")
    # the next typing's expiry comes after the voided timers fired: none of them pushed
    await alice.ack("user_typing", {"recipient_id": "bob"})
    await bob.wait_for(lambda f: stops() == 3, timeout=timeout_s + 10, what="the third stop")
    await alice.ack("list_conversations")
    assert stops() == 3 and bob.count("user_typing") == 4
    assert alice.count("user_typing") == 0 and alice.count("user_stopped_typing") == 0
    # typing stores nothing: the conversation has no message but the first
    history = await alice.ack("get_history", {"conversation_id": cid})
    assert [m["text"] for m in history["messages"]] == ["hello"]


async def test_a_resend_with_the_same_client_msg_id_returns_the_first_ack(
    gateway: Gateway, connect: Connect
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    first = await alice.ack(
        "send_message", {"recipient_id": "bob", "text": "once", "client_msg_id": "x-1"}
    )
    again = await alice.ack(
        "send_message", {"recipient_id": "bob", "text": "once", "client_msg_id": "x-1"}
    )
    assert again == first
    # another user may use the same client_msg_id
    bobs = await bob.ack(
        "send_message", {"recipient_id": "alice", "text": "mine", "client_msg_id": "x-1"}
    )
    assert bobs["message_id"] != first["message_id"] and bobs["seq"] == 2
    after = await alice.ack("send_message", {"recipient_id": "bob", "text": "next"})
    await bob.event("message_received", message_id=after["message_id"])
    assert [m["message_id"] for m in received(bob)] == [first["message_id"], after["message_id"]]
    history = await bob.ack("get_history", {"conversation_id": first["conversation_id"]})
    assert [m["text"] for m in history["messages"]] == ["once", "mine", "next"]


def acks_of(client: WsClient, prefix: str) -> dict[str, int]:
    """ref → seq of the acks to the requests whose ref starts with ``prefix``."""
    return {
        f["ref"]: f["data"]["seq"]
        for f in client.frames
        if f["event"] == "ack" and str(f["ref"]).startswith(prefix)
    }


def acks(client: WsClient, prefix: str, count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda _frame: len(acks_of(client, prefix)) == count


async def test_a_connections_messages_keep_their_order_under_load(
    stack: Stack, connect: Connect
) -> None:
    """Commands are handled many at once and committed in groups; a connection's messages
    still get their seqs in the order it sent them."""
    stack.start_service("chat")
    stack.start_gateway(NO_RATE_LIMITS)
    alice = await connect("alice")
    carol = await connect("carol")
    bob = await connect("bob")
    count = 300
    for i in range(count):  # pipelined: no waiting for acks, two senders interleaved
        await alice.send("send_message", {"recipient_id": "bob", "text": f"a{i}"}, f"load-a{i}")
        await carol.send("send_message", {"recipient_id": "bob", "text": f"c{i}"}, f"load-c{i}")
    for client, prefix in ((alice, "load-a"), (carol, "load-c")):
        await client.wait_for(acks(client, prefix, count), timeout=60, what=f"{count} acks")
        seqs = acks_of(client, prefix)
        assert [seqs[f"{prefix}{i}"] for i in range(count)] == list(range(1, count + 1))
    await bob.wait_for(lambda f: bob.count("message_received") == 2 * count, timeout=60)


async def test_the_sender_edits_and_deletes_and_both_sides_see_it(
    gateway: Gateway, connect: Connect, databases: Databases
) -> None:
    """On SQLite and on PostgreSQL (``databases``: the stack's services use them)."""
    alice = await connect("alice")
    alice_phone = await connect("alice")
    bob = await connect("bob")
    eve = await connect("eve")
    sent = await alice.ack("send_message", {"recipient_id": "bob", "text": "helo"})
    cid, mid = sent["conversation_id"], sent["message_id"]
    ref = {"conversation_id": cid, "message_id": mid}

    ack = await alice.ack("edit_message", {**ref, "text": "hello"})
    assert set(ack) == {"message_id", "edited_at"} and ack["message_id"] == mid
    expected = {**ref, "seq": 1, "text": "hello", "edited_at": ack["edited_at"]}
    for client in (alice, alice_phone, bob):  # every connection of both participants
        assert (await client.event("message_edited", message_id=mid))["data"] == expected

    # only the sender; outsiders learn nothing; bad ids and texts are refused
    assert await bob.error("edit_message", {**ref, "text": "x"}) == "forbidden"
    assert await bob.error("delete_message", ref) == "forbidden"
    assert await eve.error("delete_message", ref) == "not_found"
    unknown = {**ref, "message_id": "no-such-message"}
    assert await alice.error("delete_message", unknown) == "not_found"
    assert await alice.error("edit_message", {**ref, "text": "  "}) == "invalid_payload"
    assert await alice.error("edit_message", ref) == "invalid_payload"

    gone = await alice.ack("delete_message", ref)
    assert set(gone) == {"message_id", "deleted_at"}
    pushed = (await bob.event("message_deleted", message_id=mid))["data"]
    assert pushed == {**ref, "seq": 1, "text": None, "deleted_at": gone["deleted_at"]}
    assert await alice.ack("delete_message", ref) == gone  # again: the first answer
    assert await alice.error("edit_message", {**ref, "text": "back"}) == "conflict"

    # history keeps the seq with text null; the next message still gets seq 2
    later = await alice.ack("send_message", {"recipient_id": "bob", "text": "sorry"})
    assert later["seq"] == 2
    history = await bob.ack("get_history", {"conversation_id": cid})
    first, second = history["messages"]
    assert (first["seq"], first["text"], first["edited_at"], first["deleted_at"]) == (
        1,
        None,
        ack["edited_at"],
        gone["deleted_at"],
    )
    assert (second["text"], second["edited_at"], second["deleted_at"]) == ("sorry", None, None)
