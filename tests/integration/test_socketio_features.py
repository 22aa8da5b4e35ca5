"""PROTOCOL §8 end to end, feature by feature: the npm socket.io-client against the real
gateway and services, talking to /ws clients (calls both ways, chat with receipts and typing,
status, help), with the protocol's field names and the camelCase aliases.

One stack serves the module; each test has its own users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.client import WsClient
from tests.support.socketio_client import Report, SioClient
from tests.support.stack import Stack, poll
from tests.support.users import Users, users_fixture

RING_TIMEOUT_S = 4.0  # long enough for the grace (1 s) to end a ringing call first


@pytest.fixture(scope="module")
def module_stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = Path(tmp_path_factory.mktemp("socketio-features"))
    services = {
        "presence": {},
        "chat": {},
        "calls": {"IM_CALL_RING_TIMEOUT_S": str(RING_TIMEOUT_S)},
        "help": {},
    }
    with Stack.running(broker.url, base, services) as running:
        yield running


class BothBindings(Users):
    """Users on either binding."""

    async def sio(self, name: str, role: str = "student") -> SioClient:
        client = self.keep(await SioClient.start(self.gateway.http, self.token(name, role)))
        await client.connected()
        await client.ack("ping")  # set up: from here on pushes reach it live
        return client

    async def ws(self, name: str, role: str = "student") -> WsClient:
        client = await super().ws(name, role)
        await client.request("ping")
        return client


users = users_fixture(BothBindings)


# -- calls -------------------------------------------------------------------------------


async def test_a_socketio_student_calls_a_ws_mentor_in_camel_case(users: BothBindings) -> None:
    alice, maya = await users.sio("alice"), await users.ws("maya", "mentor")
    alice_id, maya_id = users.id("alice"), users.id("maya")

    ack = await alice.ack(
        "initiate_call", {"receiverId": maya_id, "callType": "video", "callData": {"t": "x"}}
    )
    assert ack["state"] == "ringing" and ack["expires_at"].endswith("Z")
    call_id = ack["call_id"]
    ringing = (await maya.event("call_initiated", call_id=call_id))["data"]
    assert (ringing["caller_id"], ringing["caller_name"], ringing["call_data"]) == (
        alice_id,
        "Alice",
        {"t": "x"},
    )

    assert await maya.ack("accept_call", {"call_id": call_id}) == {
        "call_id": call_id,
        "state": "accepted",
    }
    accepted = await alice.event("call_accepted", call_id=call_id)
    assert accepted["accepted_by"] == maya_id

    signal = {"type": "offer", "sdp": "v=0", "callId": "opaque: not renamed"}
    assert await alice.ack("call_signal", {"callId": call_id, "signal": signal}) == {}
    relayed = (await maya.event("call_signal", call_id=call_id))["data"]
    assert relayed == {"call_id": call_id, "from_user_id": alice_id, "signal": signal}
    await maya.ack("call_signal", {"call_id": call_id, "signal": {"type": "answer"}})
    answer = await alice.event("call_signal", call_id=call_id)
    assert answer["signal"] == {"type": "answer"} and answer["from_user_id"] == maya_id

    assert (await alice.ack("end_call", {"callId": call_id}))["state"] == "ended"
    for ended in (
        await alice.event("call_ended", call_id=call_id),
        (await maya.event("call_ended", call_id=call_id))["data"],
    ):
        assert (ended["ended_by"], ended["reason"]) == (alice_id, "hangup")


async def test_a_ws_caller_reaches_a_socketio_receiver_who_rejects(users: BothBindings) -> None:
    bob, carol = await users.ws("bob"), await users.sio("carol")
    call_id = (
        await bob.ack("initiate_call", {"receiver_id": users.id("carol"), "call_type": "audio"})
    )["call_id"]
    ringing = await carol.event("call_initiated", call_id=call_id)
    assert ringing["caller_id"] == users.id("bob") and ringing["call_type"] == "audio"
    ack = await carol.ack("reject_call", {"callId": call_id, "reason": "in a lecture"})
    assert ack == {"call_id": call_id, "state": "rejected"}
    pushed = (await bob.event("call_rejected", call_id=call_id))["data"]
    assert pushed == {
        "call_id": call_id,
        "rejected_by": users.id("carol"),
        "reason": "in a lecture",
    }
    assert await carol.event("call_rejected", call_id=call_id) == pushed
    # the same error codes as on /ws
    assert await carol.error("accept_call", {"call_id": call_id}) == "conflict"
    assert await carol.error("accept_call", {"call_id": "no-such-call"}) == "not_found"
    assert await carol.error(
        "initiate_call", {"receiverId": users.id("carol"), "callType": "audio"}
    ) == ("invalid_payload")


async def test_an_unanswered_call_to_socketio_times_out(users: BothBindings) -> None:
    dan, erin = await users.sio("dan"), await users.sio("erin")
    call_id = (
        await dan.ack("initiate_call", {"receiver_id": users.id("erin"), "call_type": "video"})
    )["call_id"]
    await erin.event("call_initiated", call_id=call_id)
    for party in (dan, erin):
        assert await party.event("call_timeout", call_id=call_id, timeout=RING_TIMEOUT_S + 8) == {
            "call_id": call_id
        }


# -- chat --------------------------------------------------------------------------------


async def test_chat_between_socketio_and_ws_with_receipts_and_typing(users: BothBindings) -> None:
    alice, bob = await users.sio("alice"), await users.ws("bob")
    alice_id, bob_id = users.id("alice"), users.id("bob")

    sent = await alice.ack(
        "send_message", {"recipientId": bob_id, "text": "Hi Bob!", "clientMsgId": "m1"}
    )
    assert (sent["seq"], sent["client_msg_id"]) == (1, "m1")
    cid = sent["conversation_id"]
    pushed = (await bob.event("message_received", message_id=sent["message_id"]))["data"]
    assert (pushed["sender_id"], pushed["text"], pushed["client_msg_id"]) == (
        alice_id,
        "Hi Bob!",
        "m1",
    )
    # resending the same client_msg_id: the first ack again, nothing delivered twice
    again = await alice.ack(
        "send_message", {"recipient_id": bob_id, "text": "Hi Bob!", "client_msg_id": "m1"}
    )
    assert again == sent

    await bob.ack("message_delivered", {"conversation_id": cid, "up_to_seq": 1})
    delivered = await alice.event("message_status", status="delivered")
    assert (delivered["up_to_seq"], delivered["by_user_id"]) == (1, bob_id)
    await bob.ack("message_read", {"conversation_id": cid, "up_to_seq": 1})
    await alice.event("message_status", status="read", up_to_seq=1)

    reply = await bob.ack("send_message", {"conversation_id": cid, "text": "Hello Alice"})
    got = await alice.event("message_received", message_id=reply["message_id"])
    assert (got["seq"], got["sender_id"], got["text"]) == (2, bob_id, "Hello Alice")
    await alice.ack("message_delivered", {"conversationId": cid, "up_to_seq": 2})
    await alice.ack("message_read", {"conversationId": cid, "up_to_seq": 2})
    await bob.event("message_status", status="read", up_to_seq=2, by_user_id=alice_id)

    assert await alice.ack("user_typing", {"recipientId": bob_id}) == {}
    typing = (await bob.event("user_typing"))["data"]
    assert (typing["conversation_id"], typing["user_id"]) == (cid, alice_id)
    await alice.ack("user_stopped_typing", {"conversationId": cid})
    await bob.event("user_stopped_typing", user_id=alice_id)
    await bob.ack("user_typing", {"recipient_id": alice_id})
    await alice.event("user_typing", user_id=bob_id, conversation_id=cid)

    history = await alice.ack("get_history", {"conversationId": cid})
    assert [m["text"] for m in history["messages"]] == ["Hi Bob!", "Hello Alice"]
    [conversation] = (await alice.ack("list_conversations"))["conversations"]
    assert conversation["peer_id"] == bob_id and conversation["unread_count"] == 0
    assert await alice.error("send_message", {"recipient_id": alice_id, "text": "me"}) == (
        "invalid_payload"
    )


async def test_a_user_on_both_bindings_gets_every_push_on_each(users: BothBindings) -> None:
    alice = await users.ws("alice")
    phone, laptop = await users.sio("bob"), await users.ws("bob")
    sent = await alice.ack("send_message", {"recipient_id": users.id("bob"), "text": "both?"})
    await phone.event("message_received", message_id=sent["message_id"])
    await laptop.event("message_received", message_id=sent["message_id"])
    # the sender's other connections get the message too: here, from the Socket.IO one
    own = await phone.ack("send_message", {"recipient_id": users.id("alice"), "text": "yes"})
    mirrored = (await laptop.event("message_received", message_id=own["message_id"]))["data"]
    assert mirrored["sender_id"] == users.id("bob")
    assert phone.count("message_received", message_id=own["message_id"]) == 0  # not echoed


async def test_socketio_events_keep_their_order(users: BothBindings) -> None:
    """Emitted without waiting for each ack, they are handed on as /ws frames are read: in
    order, so the conversation's seq follows the order they were emitted in."""
    alice, bob = await users.sio("alice"), await users.sio("bob")
    emitted = [
        await alice.emit("send_message", {"recipient_id": users.id("bob"), "text": f"m{i}"})
        for i in range(20)
    ]

    def acked(seq: int) -> Callable[[Report], bool]:
        return lambda r: r["type"] == "ack" and r["seq"] == seq

    acks = [(await alice.wait_for(acked(e)))["args"][0] for e in emitted]
    assert [a["data"]["seq"] for a in acks] == list(range(1, 21))
    await poll(lambda: bob.count("message_received") == 20, 10, "the 20 messages at bob")
    seq_of = {
        r["args"][0]["text"]: r["args"][0]["seq"]
        for r in bob.reports
        if r.get("name") == "message_received"
    }
    assert seq_of == {f"m{i}": i + 1 for i in range(20)}


async def test_an_offline_socketio_user_gets_messages_when_connecting(users: BothBindings) -> None:
    bob = await users.ws("bob")
    sent = await bob.ack("send_message", {"recipient_id": users.id("fay"), "text": "later"})
    fay = await users.sio("fay")
    caught_up = await fay.event("message_received", message_id=sent["message_id"])
    assert caught_up["text"] == "later"


# -- status ------------------------------------------------------------------------------


async def test_mentor_status_across_bindings(users: BothBindings) -> None:
    maya = await users.sio("maya", "mentor")
    student_ws, student_sio = await users.ws("sam"), await users.sio("sue")
    maya_id = users.id("maya")

    status = await maya.ack("mentor_busy", {"status": "break", "statusMessage": "back at 2"})
    assert (status["status"], status["status_message"]) == ("break", "back at 2")
    await student_ws.until_mentor(maya_id, status="break", status_message="back at 2")
    await student_sio.until_mentor(maya_id, status="break", status_message="back at 2")

    ws_mentor = await users.ws("max", "mentor")
    await ws_mentor.ack("mentor_available", {"status_message": "ask me", "status_data": {"a": 1}})
    seen = await student_sio.until_mentor(users.id("max"), status_message="ask me")
    assert seen["status_data"] == {"a": 1} and seen["online"] is True
    mentors = {m["mentor_id"]: m for m in (await student_sio.ack("get_mentors"))["mentors"]}
    assert mentors[maya_id]["status"] == "break"
    assert await student_sio.error("mentor_available", {}) == "forbidden"

    snapshot = await (await users.sio("sid")).event("mentor_status_snapshot")
    assert maya_id in {m["mentor_id"] for m in snapshot["mentors"]}


# -- help --------------------------------------------------------------------------------


async def test_help_request_from_socketio_accepted_on_ws(users: BothBindings) -> None:
    maya = await users.ws("maya", "mentor")
    max_ = await users.sio("max", "mentor")
    student = await users.sio("stu")
    for mentor_id in (users.id("maya"), users.id("max")):
        await student.until_mentor(mentor_id, online=True, status="available")

    asked = await student.ack(
        "student_request_help",
        {
            "subject": "Math",
            "message": "fractions",
            "urgency": "high",
            "mentorId": "broadcast_to_mentors",
        },
    )
    assert asked["status"] == "open"
    request_id = asked["request_id"]
    shown = (await maya.event("help_request_received", request_id=request_id))["data"]
    assert (shown["student_id"], shown["mentor_id"]) == (users.id("stu"), None)
    await max_.event("help_request_received", request_id=request_id)

    assert await maya.ack("accept_help_request", {"request_id": request_id}) == {
        "request_id": request_id,
        "status": "accepted",
    }
    accepted = await student.event("help_request_accepted", request_id=request_id)
    assert accepted["mentor_id"] == users.id("maya")
    closed = await max_.event("help_request_closed", request_id=request_id)
    assert closed["reason"] == "accepted"
    assert await max_.error("accept_help_request", {"requestId": request_id}) == "conflict"


async def test_targeted_help_to_a_socketio_mentor_is_declined(users: BothBindings) -> None:
    mentor = await users.sio("mia", "mentor")
    student = await users.ws("sol")
    await student.until_mentor(users.id("mia"), online=True)
    asked = await student.ack(
        "student_request_help",
        {"subject": "Science", "message": "cells", "mentor_id": users.id("mia")},
    )
    request_id = asked["request_id"]
    await mentor.event("help_request_received", request_id=request_id)
    listed = await mentor.ack("list_help_requests")
    assert [r["request_id"] for r in listed["requests"]] == [request_id]
    await mentor.ack("decline_help_request", {"requestId": request_id, "reason": "busy"})
    declined = (await student.event("help_request_declined", request_id=request_id))["data"]
    assert (declined["mentor_id"], declined["reason"]) == (users.id("mia"), "busy")
    assert await mentor.error("student_request_help", {"subject": "x", "message": "y"}) == (
        "forbidden"
    )


async def test_a_socketio_student_cancels_in_camel_case(users: BothBindings) -> None:
    student = await users.sio("sky")
    asked = await student.ack("student_request_help", {"subject": "General", "message": "hi"})
    cancelled = await student.ack("cancel_help_request", {"requestId": asked["request_id"]})
    assert cancelled == {"request_id": asked["request_id"], "status": "cancelled"}
    assert await student.error("cancel_help_request", {"requestId": "no-such-request"}) == (
        "not_found"
    )
