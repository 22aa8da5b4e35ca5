"""Authorization matrix (issue "Hostile input"): every client event × role × whose object it
names, over real WebSockets against the whole stack, with the exact error code.

* Roles come from ``shared/protocol/registry.py``: an event's disallowed roles must get
  ``forbidden`` (a new event is covered by that row automatically).
* Ownership rows (own object / someone else's / an id that does not exist) come from the
  table :data:`EXPECTED`; a test fails when the registry has an event the table lacks.
* After a refusal, the object is checked to be untouched where that is observable.

Where PROTOCOL prescribes a code, that code is asserted; where it allows two
("``forbidden``/``not_found``", chat §4) or is silent, the code the implementation returns is
asserted and the row says so.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.auth import Role
from shared.protocol.registry import CLIENT_EVENTS
from shared.protocol.registry import SERVICES as CLIENT_SERVICES
from tests.support.broker import Broker
from tests.support.client import Frame, WsClient
from tests.support.stack import Gateway, Stack

ROLES = ("student", "mentor")
ACK = "ack"

# PROTOCOL §5/§6: who may send each role-restricted event (the registry must agree with it).
PROTOCOL_ROLES = {
    "mentor_available": {"mentor"},
    "mentor_busy": {"mentor"},
    "student_request_help": {"student"},
    "accept_help_request": {"mentor"},
    "decline_help_request": {"mentor"},
    "cancel_help_request": {"student"},
}

# event → relation of the sender to the object the event names → the reply.
#
# Calls (§3): "unknown call_id or not a party → not_found; wrong party for the action →
# forbidden". Chat (§4): "Only the two participants may read, send to, or mark a conversation
# (forbidden/not_found otherwise)": PROTOCOL allows either; the implementation answers
# not_found, exactly as for an id that does not exist (docs/chat.md), and that is asserted.
# Help (§6) is silent on the code for a request of someone else: the implementation answers
# not_found (a targeted request "does not exist" for other mentors, another student's request
# is "no help request of yours"), and that is asserted.
CALL_PARTY_ONLY = {"receiver": ACK, "caller": ACK, "outsider": "not_found", "missing": "not_found"}
CALL_RECEIVER_ONLY = {**CALL_PARTY_ONLY, "caller": "forbidden"}
PARTICIPANT_ONLY = {"participant": ACK, "outsider": "not_found", "missing": "not_found"}
# §4: edit_message / delete_message are for "the message's sender"; the other participant is
# forbidden; someone outside the conversation learns nothing, as for any conversation.
SENDER_ONLY = {
    "sender": ACK,
    "participant": "forbidden",
    "outsider": "not_found",
    "missing": "not_found",
}
MENTOR_OF_REQUEST = {
    "broadcast": ACK,
    "targeted_at_me": ACK,
    "targeted_at_other": "not_found",  # PROTOCOL silent: what the code does
    "missing": "not_found",
}
EXPECTED: dict[str, dict[str, str]] = {
    "accept_call": CALL_RECEIVER_ONLY,
    "reject_call": CALL_RECEIVER_ONLY,
    "end_call": CALL_PARTY_ONLY,
    "call_signal": CALL_PARTY_ONLY,
    "send_message": PARTICIPANT_ONLY,  # by conversation_id
    "message_delivered": PARTICIPANT_ONLY,
    "message_read": PARTICIPANT_ONLY,
    "user_typing": PARTICIPANT_ONLY,  # by conversation_id
    "user_stopped_typing": PARTICIPANT_ONLY,
    "get_history": PARTICIPANT_ONLY,
    "sync": PARTICIPANT_ONLY,
    "edit_message": SENDER_ONLY,
    "delete_message": SENDER_ONLY,
    "accept_help_request": MENTOR_OF_REQUEST,
    "decline_help_request": MENTOR_OF_REQUEST,
    "cancel_help_request": {
        "asker": ACK,
        "other_student": "not_found",  # PROTOCOL silent ("the student who asked"): the code's
        "missing": "not_found",
    },
}
# Events that name no object of anyone's: their ownership questions (ids of others in `data`,
# listings showing only one's own) are covered by test_events_that_name_no_object.
OBJECT_LESS = {
    "ping",
    "initiate_call",
    "list_conversations",
    "mentor_available",
    "mentor_busy",
    "get_mentors",
    "student_request_help",
    "list_help_requests",
}
CALL_EVENTS = {"accept_call", "reject_call", "end_call", "call_signal"}
HELP_EVENTS = {"accept_help_request", "decline_help_request", "cancel_help_request"}
MESSAGE_EVENTS = {"edit_message", "delete_message"}
MESSAGE_CHANGES = {"message_edited", "message_deleted"}


def allowed_roles(event: str) -> list[str]:
    return sorted(role.value for role in CLIENT_EVENTS[event].roles)


OWNERSHIP_CASES = [
    pytest.param(event, role, relation, expected, id=f"{event}-{role}-{relation}")
    for event, relations in EXPECTED.items()
    for role in allowed_roles(event)
    for relation, expected in relations.items()
]
ROLE_CASES = [
    pytest.param(event, role, id=f"{event}-{role}") for event in CLIENT_EVENTS for role in ROLES
]


# -- the stack and the users of one test -----------------------------------------------------


@pytest.fixture(scope="module")
def module_stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = Path(tmp_path_factory.mktemp("authz"))
    services: dict[str, dict[str, str]] = {name: {} for name in CLIENT_SERVICES}
    with Stack.running(broker.url, base, services) as running:
        yield running


class World:
    """Fresh users for one test (ids get a suffix), their connections, and the objects."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.gateway: Gateway = stack.gateways[0]
        self.suffix = uuid.uuid4().hex[:6]
        self.clients: dict[str, WsClient] = {}
        self.watcher: WsClient | None = None

    def id(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    async def connect(self, name: str, role: str) -> WsClient:
        if name not in self.clients:
            token = self.stack.token(self.id(name), role, name.upper())
            client = await WsClient.connect(self.gateway.ws, token)
            await client.event("connected")
            self.clients[name] = client
        return self.clients[name]

    async def user(self, name: str, role: str) -> WsClient:
        """A connected user; a mentor only once help has heard of them from presence (a
        student who saw their status change: presence's fact is in help's queue by then)."""
        if role != "mentor" or name in self.clients:
            return await self.connect(name, role)
        if self.watcher is None:
            self.watcher = await self.connect("watcher", "student")
            await self.watcher.event("mentor_status_snapshot")
        client = await self.connect(name, role)
        await self.watcher.until_mentor(self.id(name), online=True)
        return client

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


@pytest.fixture
async def world(module_stack: Stack) -> AsyncIterator[World]:
    made = World(module_stack)
    yield made
    await made.close()


def other(role: str) -> str:
    return "mentor" if role == "student" else "student"


# -- objects, by how the sender ("me") relates to them ---------------------------------------


@dataclass
class Made:
    """An object for one row: the id the event names, and who else is involved."""

    object_id: str
    owner: WsClient | None = None  # the one who may act on it (to show it is untouched)
    peer: WsClient | None = None  # the other party / participant
    peer_id: str | None = None
    message_id: str = "no-such-message"  # the conversation's first message


async def ring(caller: WsClient, receiver: WsClient, receiver_id: str) -> str:
    ack = await caller.ack("initiate_call", {"receiver_id": receiver_id, "call_type": "audio"})
    assert ack["state"] == "ringing", ack
    await receiver.event("call_initiated", call_id=ack["call_id"])
    return str(ack["call_id"])


async def make_call(world: World, me: WsClient, role: str, relation: str) -> Made:
    if relation == "missing":
        return Made(f"no-such-call-{world.suffix}")
    if relation == "outsider":
        caller, receiver = await world.user("x", "student"), await world.user("y", "mentor")
        return Made(await ring(caller, receiver, world.id("y")), owner=receiver, peer=caller)
    peer = await world.user("peer", other(role))
    if relation == "receiver":  # the peer calls me
        return Made(await ring(peer, me, world.id("me")), owner=me, peer=peer)
    # relation == "caller": I call the peer, who is the receiver
    return Made(await ring(me, peer, world.id("peer")), owner=peer, peer=peer)


async def make_conversation(world: World, me: WsClient, role: str, relation: str) -> Made:
    """A conversation with one message (seq 1), sent to the second participant."""
    if relation == "missing":
        return Made("dm_" + uuid.uuid4().hex)
    if relation == "outsider":  # x wrote to y; y need not be online
        sender, to = await world.user("x", "student"), world.id("y")
    elif relation == "sender":  # I wrote to the peer
        peer = await world.user("peer", other(role))
        ack = await me.ack("send_message", {"recipient_id": world.id("peer"), "text": "first"})
        return Made(ack["conversation_id"], owner=me, peer=peer, message_id=ack["message_id"])
    else:  # the peer wrote to me
        sender, to = await world.user("peer", other(role)), world.id("me")
    ack = await sender.ack("send_message", {"recipient_id": to, "text": "first"})
    assert ack["seq"] == 1
    return Made(
        str(ack["conversation_id"]),
        owner=sender,
        peer=sender,
        peer_id=to,
        message_id=ack["message_id"],
    )


async def make_help_request(world: World, me: WsClient, role: str, relation: str) -> Made:
    if relation == "missing":
        return Made(f"no-such-request-{world.suffix}")
    if relation == "asker":
        student = me
    else:
        student = await world.user("asker", "student")
    target = "broadcast_to_mentors"
    if relation == "targeted_at_me":
        target = world.id("me")
    elif relation == "targeted_at_other":
        await world.user("m2", "mentor")
        target = world.id("m2")
    data = {"subject": "Math", "message": "help me", "mentor_id": target}
    ack = await request_help(student, data)
    assert ack["status"] == "open", ack
    owner = world.clients.get("m2") if relation == "targeted_at_other" else student
    return Made(str(ack["request_id"]), owner=owner, peer=student)


async def request_help(student: WsClient, data: dict[str, Any]) -> dict[str, Any]:
    """``student_request_help``, acknowledged. Help learns of a mentor who has just connected
    a moment later (from presence); a request targeted at them meanwhile is ``not_found`` and
    creates nothing, so it is sent again until the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        reply = await student.request("student_request_help", data)
        if reply["event"] == "ack":
            return dict(reply["data"])
        assert reply["data"]["code"] == "not_found" and loop.time() < deadline, reply
        await asyncio.sleep(0.05)


def payload(event: str, made: Made) -> dict[str, Any]:
    object_id = made.object_id
    if event in MESSAGE_EVENTS:
        edit = {"text": "edited"} if event == "edit_message" else {}
        return {"conversation_id": object_id, "message_id": made.message_id, **edit}
    if event in CALL_EVENTS:
        extra = {"signal": {"type": "offer", "sdp": "v=0"}} if event == "call_signal" else {}
        return {"call_id": object_id, **extra}
    if event in HELP_EVENTS:
        return {"request_id": object_id}
    payloads: dict[str, dict[str, Any]] = {
        "send_message": {"conversation_id": object_id, "text": "hello"},
        "message_delivered": {"conversation_id": object_id, "up_to_seq": 1},
        "message_read": {"conversation_id": object_id, "up_to_seq": 1},
        "user_typing": {"conversation_id": object_id},
        "user_stopped_typing": {"conversation_id": object_id},
        "get_history": {"conversation_id": object_id},
        "sync": {"since": {object_id: 0}},
    }
    return payloads[event]


async def make(world: World, event: str, me: WsClient, role: str, relation: str) -> Made:
    if event in CALL_EVENTS:
        return await make_call(world, me, role, relation)
    if event in HELP_EVENTS:
        return await make_help_request(world, me, role, relation)
    return await make_conversation(world, me, role, relation)


# -- what must hold after the reply ----------------------------------------------------------


async def check_acted(world: World, event: str, me: WsClient, made: Made, ack: Frame) -> None:
    """The ack says what the event did, and the other side was told."""
    data, oid = ack["data"], made.object_id
    me_id = world.id("me")
    if event in CALL_EVENTS:
        if event == "call_signal":
            assert data == {}
            assert made.peer is not None
            signal = await made.peer.event("call_signal", call_id=oid, from_user_id=me_id)
            assert signal["data"]["signal"] == {"type": "offer", "sdp": "v=0"}
        else:
            state = {"accept_call": "accepted", "reject_call": "rejected", "end_call": "ended"}
            assert data == {"call_id": oid, "state": state[event]}, data
    elif event == "send_message":
        assert data["conversation_id"] == oid and data["seq"] == 2
    elif event in ("message_delivered", "message_read"):
        assert data == {}
        assert made.peer is not None
        status = "read" if event == "message_read" else "delivered"
        told = await made.peer.event("message_status", conversation_id=oid, status=status)
        assert told["data"]["by_user_id"] == me_id
    elif event == "get_history":
        assert data["conversation_id"] == oid and [m["seq"] for m in data["messages"]] == [1]
    elif event == "sync":
        assert data == {}  # then the message again, pushed after the ack
        await me.event("message_received", after=ack, conversation_id=oid, seq=1)
    elif event in ("user_typing", "user_stopped_typing"):
        assert data == {}
        assert made.peer is not None
        await made.peer.event(event, conversation_id=oid, user_id=me_id)
    elif event in MESSAGE_EVENTS:
        pushed, text = (
            ("message_edited", "edited")
            if event == "edit_message"
            else (
                "message_deleted",
                None,
            )
        )
        assert data["message_id"] == made.message_id, data
        assert made.peer is not None
        told = await made.peer.event(pushed, message_id=made.message_id)
        assert (told["data"]["conversation_id"], told["data"]["text"]) == (oid, text)
    elif event == "accept_help_request":
        assert data == {"request_id": oid, "status": "accepted"}
        assert made.peer is not None
        await made.peer.event("help_request_accepted", request_id=oid, mentor_id=me_id)
    elif event == "decline_help_request":
        assert data == {"request_id": oid}
    elif event == "cancel_help_request":
        assert data == {"request_id": oid, "status": "cancelled"}


async def check_untouched(world: World, event: str, me: WsClient, made: Made) -> None:
    """A refused event changed nothing that the object's owner can see."""
    oid, owner = made.object_id, made.owner
    if owner is None:
        return  # an id that does not exist
    if event in CALL_EVENTS:
        # Still ringing: its receiver can still accept it.
        accepted = await owner.ack("accept_call", {"call_id": oid})
        assert accepted["state"] == "accepted"
        # Nothing was relayed (a signal would have come before that ack: same service).
        for party in (owner, made.peer):
            assert party is not None and party.count("call_signal") == 0
    elif event in HELP_EVENTS:
        assert made.peer is not None
        mine = (await made.peer.ack("list_help_requests"))["requests"]
        assert [(r["request_id"], r["status"]) for r in mine] == [(oid, "open")]
        if event == "accept_help_request":  # and the mentor it is meant for may take it
            accepted = await owner.ack("accept_help_request", {"request_id": oid})
            assert accepted["status"] == "accepted"
    else:
        # The conversation still holds only its first message, neither read nor delivered.
        history = await owner.ack("get_history", {"conversation_id": oid})
        assert [(m["seq"], m["text"], m["status"]) for m in history["messages"]] == [
            (1, "first", "sent")
        ]
        assert not [f for f in owner.frames if f["event"] == "message_status"]
        # nothing of it reached me, but the message itself when it was sent to me
        told = {"message_received"} if made.peer_id == world.id("me") else set()
        assert not [
            f
            for f in me.frames
            if f["data"].get("conversation_id") == oid
            and "seq" in f["data"]
            and f["event"] not in told
        ]
        for party in (owner, made.peer):  # and no change was pushed to anyone
            assert party is not None
            assert not [f for f in party.frames if f["event"] in MESSAGE_CHANGES]


# -- the tests -------------------------------------------------------------------------------


def test_every_client_event_has_a_row() -> None:
    """A new event in the registry needs its ownership rows here (or a place among the
    object-less ones); its role row is derived from the registry already."""
    assert set(CLIENT_EVENTS) == set(EXPECTED) | OBJECT_LESS, set(CLIENT_EVENTS) ^ (
        set(EXPECTED) | OBJECT_LESS
    )
    for event, roles in PROTOCOL_ROLES.items():
        assert set(allowed_roles(event)) == roles, event
    for event in set(CLIENT_EVENTS) - set(PROTOCOL_ROLES):
        assert set(allowed_roles(event)) == set(ROLES), f"PROTOCOL lets anyone send {event}"


@pytest.mark.parametrize(("event", "role"), ROLE_CASES)
async def test_the_role_check(world: World, event: str, role: str) -> None:
    """Every event × role: a role the registry does not allow gets ``forbidden`` — even when
    the object exists and the data is valid — and the object stays as it was."""
    me = await world.user("me", role)
    if Role(role) in CLIENT_EVENTS[event].roles:
        data = sample_data(world, event)
        reply = await me.request(event, data)
        refused = reply["event"] == "error" and reply["data"]["code"] == "forbidden"
        assert not refused, f"{role} may send {event}: {reply}"
        return
    made: Made | None = None
    if event in HELP_EVENTS:  # a real open request (another student's broadcast)
        made = await make_help_request(world, me, role, "other_student")
        data = payload(event, made)
    else:
        data = sample_data(world, event)
    reply = await me.request(event, data)
    assert reply["event"] == "error", reply
    assert reply["data"]["code"] == "forbidden", reply
    assert reply["data"]["event"] == event
    if event in HELP_EVENTS and made is not None and made.peer is not None:
        mine = (await made.peer.ack("list_help_requests"))["requests"]
        assert [r["status"] for r in mine] == ["open"]
    if event in ("mentor_available", "mentor_busy"):  # a student did not become a mentor
        mentors = (await me.ack("get_mentors"))["mentors"]
        assert world.id("me") not in {m["mentor_id"] for m in mentors}


def sample_data(world: World, event: str) -> dict[str, Any]:
    """Valid data for ``event`` that names nothing of anyone's ({} for an event not known
    here: a new event still gets its role row)."""
    samples: dict[str, dict[str, Any]] = {
        "initiate_call": {"receiver_id": world.id("nobody"), "call_type": "video"},
        "send_message": {"recipient_id": world.id("nobody"), "text": "hi"},
        "mentor_available": {"status_message": "here"},
        "mentor_busy": {"status": "break"},
        "student_request_help": {"subject": "Math", "message": "help me"},
        "user_typing": {"recipient_id": world.id("nobody")},
        "user_stopped_typing": {"recipient_id": world.id("nobody")},
        "sync": {"since": {}},
        "accept_call": {"call_id": "none"},
        "reject_call": {"call_id": "none"},
        "end_call": {"call_id": "none"},
        "call_signal": {"call_id": "none", "signal": {}},
        "message_delivered": {"conversation_id": "dm_none", "up_to_seq": 1},
        "message_read": {"conversation_id": "dm_none", "up_to_seq": 1},
        "get_history": {"conversation_id": "dm_none"},
        "accept_help_request": {"request_id": "none"},
        "decline_help_request": {"request_id": "none"},
        "cancel_help_request": {"request_id": "none"},
        "edit_message": {"conversation_id": "dm_none", "message_id": "none", "text": "x"},
        "delete_message": {"conversation_id": "dm_none", "message_id": "none"},
    }
    return samples.get(event, {})


@pytest.mark.parametrize(("event", "role", "relation", "expected"), OWNERSHIP_CASES)
async def test_whose_object(
    world: World, event: str, role: str, relation: str, expected: str
) -> None:
    me = await world.user("me", role)
    made = await make(world, event, me, role, relation)
    reply = await me.request(event, payload(event, made))
    if expected == ACK:
        assert reply["event"] == "ack", reply
        await check_acted(world, event, me, made, reply)
        return
    assert reply["event"] == "error", reply
    assert reply["data"]["code"] == expected, reply
    assert reply["data"]["event"] == event
    await check_untouched(world, event, me, made)


async def test_events_that_name_no_object(world: World) -> None:
    """Ids of other users in ``data`` are ignored or refused; listings show one's own only."""
    student, mentor = await world.user("me", "student"), await world.user("m", "mentor")
    other_mentor = await world.user("m2", "mentor")
    x = await world.user("x", "student")
    me_id, m_id, m2_id, x_id = (world.id(n) for n in ("me", "m", "m2", "x"))

    # ping / get_mentors: anyone
    for client in (student, mentor):
        assert (await client.request("ping", {}))["event"] == "pong"
        listed = (await client.ack("get_mentors"))["mentors"]
        assert {m_id, m2_id} <= {m["mentor_id"] for m in listed}

    # send_message: the sender is the authenticated user, whatever `data` says (§2)
    sent = await student.ack(
        "send_message",
        {"recipient_id": m_id, "text": "hi", "sender_id": x_id, "user_id": x_id},
    )
    got = await mentor.event("message_received", message_id=sent["message_id"])
    assert got["data"]["sender_id"] == me_id
    # ... and a message to a user id never seen is kept for them (PROTOCOL: "messages to an
    # offline user are kept"; nothing says an unknown id is refused): what the code does.
    assert await student.ack("send_message", {"recipient_id": world.id("ghost"), "text": "?"})
    assert await student.error("send_message", {"recipient_id": me_id, "text": "me"}) == (
        "invalid_payload"  # §4: a message to yourself
    )

    # list_conversations: one's own only (x wrote to m2: neither the student's nor m's)
    await x.ack("send_message", {"recipient_id": m2_id, "text": "private"})
    for client, peers in ((student, {m_id, world.id("ghost")}), (mentor, {me_id})):
        conversations = (await client.ack("list_conversations"))["conversations"]
        assert {c["peer_id"] for c in conversations} == peers, conversations

    # initiate_call: never as someone else; yourself → invalid_payload (§3); a user with no
    # connection → refused at once with reason "offline" (§3, v1.1)
    assert await student.error("initiate_call", {"receiver_id": me_id, "call_type": "video"}) == (
        "invalid_payload"
    )
    offline = await student.ack(
        "initiate_call", {"receiver_id": world.id("ghost"), "call_type": "video"}
    )
    assert (offline["state"], offline["reason"]) == ("rejected", "offline")
    ringing = await student.ack(
        "initiate_call", {"receiver_id": m_id, "call_type": "audio", "caller_id": x_id}
    )
    pushed = await mentor.event("call_initiated", call_id=ringing["call_id"])
    assert pushed["data"]["caller_id"] == me_id
    await student.ack("end_call", {"call_id": ringing["call_id"]})

    # mentor_available / mentor_busy: a mentor sets their own status, never another's
    await other_mentor.ack("mentor_busy", {"status": "break"})
    own = await mentor.ack(
        "mentor_available", {"status_message": "mine", "mentor_id": m2_id, "user_id": m2_id}
    )
    assert own["mentor_id"] == m_id and own["status"] == "available"
    own = await mentor.ack("mentor_busy", {"status": "busy", "mentor_id": m2_id})
    assert own["mentor_id"] == m_id and own["status"] == "busy"
    statuses = {m["mentor_id"]: m for m in (await x.ack("get_mentors"))["mentors"]}
    assert statuses[m2_id]["status"] == "break"
    assert statuses[m_id]["status"] == "busy"

    # student_request_help: as oneself; to a mentor id that is not a mentor → not_found
    # (PROTOCOL silent; what the code does)
    asked = await student.ack(
        "student_request_help",
        {"subject": "Math", "message": "help", "student_id": x_id, "mentor_id": m_id},
    )
    pushed = await mentor.event("help_request_received", request_id=asked["request_id"])
    assert pushed["data"]["student_id"] == me_id
    for not_a_mentor in (world.id("ghost"), x_id):
        data = {"subject": "Math", "message": "help", "mentor_id": not_a_mentor}
        assert await student.error("student_request_help", data) == "not_found"

    # list_help_requests: a student sees their own; a mentor what is meant for them
    theirs = await x.ack(
        "student_request_help", {"subject": "Sci", "message": "x", "mentor_id": m2_id}
    )
    mine = (await student.ack("list_help_requests"))["requests"]
    assert [r["request_id"] for r in mine] == [asked["request_id"]]
    for_m = {r["request_id"] for r in (await mentor.ack("list_help_requests"))["requests"]}
    assert asked["request_id"] in for_m and theirs["request_id"] not in for_m
    for_m2 = {r["request_id"] for r in (await other_mentor.ack("list_help_requests"))["requests"]}
    assert theirs["request_id"] in for_m2 and asked["request_id"] not in for_m2
