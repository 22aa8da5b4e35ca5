"""Every way a chat command is refused, end to end: the code, and that nothing happened.

Chat has no ``forbidden``: a conversation you are not in answers ``not_found``, exactly like
one that does not exist (docs/chat.md).
"""

from __future__ import annotations

from typing import Any

import httpx

from services.chat.domain import conversation_id_for
from tests.support.client import WsClient, bearer
from tests.support.stack import Stack


async def test_invalid_and_not_found_cases(stack: Stack) -> None:
    stack.start_service("chat")
    gateway = stack.start_gateway()
    alice = await WsClient.connect(gateway.ws, stack.token("alice"))
    bob = await WsClient.connect(gateway.ws, stack.token("bob", "mentor"))
    eve = await WsClient.connect(gateway.ws, stack.token("eve"))
    ab = conversation_id_for("alice", "bob")
    await alice.ack("send_message", {"recipient_id": "bob", "text": "first"})
    await bob.event("message_received", seq=1)

    invalid: list[tuple[str, dict[str, Any]]] = [
        ("send_message", {"recipient_id": "alice", "text": "me"}),  # to yourself
        ("send_message", {"text": "nobody"}),
        ("send_message", {"recipient_id": "bob", "text": "   "}),
        ("send_message", {"recipient_id": "bob", "text": ""}),
        ("send_message", {"recipient_id": "bob", "text": "x" * 4001}),
        ("send_message", {"recipient_id": "bob", "text": "hi", "client_msg_id": "k" * 65}),
        ("send_message", {"recipient_id": "bad id!", "text": "hi"}),
        ("send_message", {"recipient_id": "bob", "text": 5}),
        # both names given, but they disagree
        ("send_message", {"recipient_id": "eve", "conversation_id": ab, "text": "hi"}),
        ("message_delivered", {"conversation_id": ab, "up_to_seq": 2}),  # beyond the last
        ("message_delivered", {"conversation_id": ab, "up_to_seq": 0}),
        ("message_read", {"conversation_id": ab}),
        ("user_typing", {"recipient_id": "alice"}),
        ("user_stopped_typing", {}),
        ("get_history", {"conversation_id": ab, "limit": 101}),
        ("get_history", {"conversation_id": ab, "limit": 0}),
        ("get_history", {"conversation_id": ab, "before_seq": 0}),
        ("get_history", {}),
        ("sync", {"since": {ab: -1}}),
        ("sync", {"since": [ab]}),
    ]
    for event, data in invalid:
        assert await alice.error(event, data) == "invalid_payload", (event, data)

    not_found: list[tuple[str, dict[str, Any]]] = [
        ("send_message", {"conversation_id": "dm_nope", "text": "hi"}),
        ("message_read", {"conversation_id": "dm_nope", "up_to_seq": 1}),
        ("user_typing", {"conversation_id": "dm_nope"}),
        ("get_history", {"conversation_id": "dm_nope"}),
        ("sync", {"since": {ab: 0, "dm_nope": 0}}),
    ]
    for event, data in not_found:
        assert await alice.error(event, data) == "not_found", (event, data)
    # eve is in no conversation with alice and bob: she cannot tell it exists
    outsider: list[tuple[str, dict[str, Any]]] = [
        ("send_message", {"conversation_id": ab, "text": "let me in"}),
        ("message_delivered", {"conversation_id": ab, "up_to_seq": 1}),
        ("message_read", {"conversation_id": ab, "up_to_seq": 1}),
        ("user_typing", {"conversation_id": ab}),
        ("user_stopped_typing", {"conversation_id": ab}),
        ("get_history", {"conversation_id": ab}),
        ("sync", {"since": {ab: 0}}),
    ]
    for event, data in outsider:
        reply = await eve.request(event, data)
        assert reply["event"] == "error", (event, reply)
        assert reply["data"] == {
            "code": "not_found",
            "message": f"conversation {ab} not found",
            "event": event,
        }

    # nothing of the above reached anyone or changed anything
    history = await bob.ack("get_history", {"conversation_id": ab})
    assert [m["text"] for m in history["messages"]] == ["first"]
    assert history["messages"][0]["status"] == "sent"
    assert bob.count("user_typing") == 0 and bob.count("message_received") == 1
    assert alice.count("message_status") == 0 and alice.count("message_received") == 0
    assert eve.count("message_received") == 0
    # errors never close the connection
    assert (await alice.ack("send_message", {"conversation_id": ab, "text": "still here"}))[
        "seq"
    ] == 2
    for client in (alice, bob, eve):
        await client.close()

    # the HTTP routes answer the same
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        auth = bearer(stack.token("eve"))
        response = await http.get(f"/api/conversations/{ab}/messages", headers=auth)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert (await http.get("/api/conversations", headers=auth)).json() == {"conversations": []}


async def test_a_conversation_far_ahead_of_its_recipient_refuses_more(stack: Stack) -> None:
    stack.start_service("chat", IM_MAX_UNDELIVERED_PER_CONVERSATION="3")
    gateway = stack.start_gateway()
    alice = await WsClient.connect(gateway.ws, stack.token("alice"))
    for n in range(3):  # to a user id nobody has seen: nothing is ever delivered
        await alice.ack("send_message", {"recipient_id": "ghost", "text": f"m{n}"})
    refused = await alice.request("send_message", {"recipient_id": "ghost", "text": "one more"})
    assert refused["event"] == "error", refused
    assert refused["data"]["code"] == "conflict" and "ghost" in refused["data"]["message"]
    ghost = await WsClient.connect(gateway.ws, stack.token("ghost"))  # they show up
    last = await ghost.event("message_received", seq=3)
    conversation = last["data"]["conversation_id"]
    await ghost.ack("message_delivered", {"conversation_id": conversation, "up_to_seq": 3})
    sent = await alice.ack("send_message", {"recipient_id": "ghost", "text": "now it goes"})
    assert sent["seq"] == 4
    for client in (alice, ghost):
        await client.close()
