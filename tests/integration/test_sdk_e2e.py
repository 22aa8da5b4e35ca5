"""The Python SDK against the real stack: every method, typed acks, pushes, typed errors, CLI.

One stack (presence, chat, calls, help, one gateway) serves the module; each test uses its
own user ids. Restarts and timeouts have their own stacks in ``test_sdk_resilience.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import instantmentor_client as sdk
import pytest

from tests.support.broker import Broker
from tests.support.stack import Gateway, Stack, poll
from tests.support.users import Users, users_fixture

WAIT_S = 10.0


@pytest.fixture(scope="module")
def module_stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = Path(tmp_path_factory.mktemp("sdk-e2e"))
    services: dict[str, dict[str, str]] = {s: {} for s in ("presence", "chat", "calls", "help")}
    with Stack.running(broker.url, base, services) as running:
        yield running


class SdkUsers(Users):
    async def connect(self, name: str, role: str = "student") -> sdk.InstantMentorClient:
        client = self.keep(sdk.InstantMentorClient(self.gateway.ws, token=self.token(name, role)))
        session = await client.connect()
        assert (session.user_id, session.role, session.protocol_version) == (
            self.id(name),
            role,
            1,
        )
        return client


users = users_fixture(SdkUsers)


def matching(**fields: object) -> Callable[[sdk.Event], bool]:
    return lambda e: all(e.data.get(k) == v for k, v in fields.items())


async def test_chat_methods_receipts_and_dedupe(users: SdkUsers) -> None:
    alice, bob = await users.connect("alice"), await users.connect("bob")
    alice_id, bob_id = users.id("alice"), users.id("bob")
    bob_messages = bob.events("message_received")
    bob_typing = bob.events("user_typing", "user_stopped_typing")
    alice_status = alice.events("message_status")

    await alice.typing(recipient_id=bob_id)
    typing = await bob_typing.next(WAIT_S)
    assert typing.name == "user_typing"
    assert typing.payload == sdk.TypingNotice(
        conversation_id=typing.data["conversation_id"], user_id=alice_id, user_name="Alice"
    )
    await alice.typing(recipient_id=bob_id, active=False)
    assert (await bob_typing.next(WAIT_S)).name == "user_stopped_typing"

    sent = [await alice.send_message(f"hello {i}", recipient_id=bob_id) for i in range(1, 4)]
    assert all(isinstance(s, sdk.MessageSent) for s in sent)
    assert [s.seq for s in sent] == [1, 2, 3] and all(s.client_msg_id for s in sent)
    cid = sent[0].conversation_id
    got = [(await bob_messages.next(WAIT_S)).payload for _ in sent]
    assert [(m.message_id, m.text, m.sender_id) for m in got if isinstance(m, sdk.ChatMessage)] == [
        (s.message_id, f"hello {i}", alice_id) for i, s in enumerate(sent, 1)
    ]

    # bob's SDK acknowledged delivery by itself, coalesced up to the last seq
    delivered = await alice_status.wait_for(
        "message_status", matching(status="delivered", up_to_seq=3), timeout=WAIT_S
    )
    assert delivered.payload == sdk.MessageStatus.from_dict(delivered.data)
    assert delivered.data["by_user_id"] == bob_id
    await bob.mark_read(cid, 2)
    await alice_status.wait_for(
        "message_status", matching(status="read", up_to_seq=2), timeout=WAIT_S
    )
    await bob.mark_delivered(cid, 3)  # moves nothing: acknowledged, tells no one

    history = await bob.get_history(cid)
    assert isinstance(history, sdk.History) and history.has_more is False
    assert [(m.seq, m.status) for m in history.messages] == [
        (1, "read"),
        (2, "read"),
        (3, "delivered"),
    ]
    page = await bob.get_history(cid, before_seq=3, limit=1)
    assert [m.seq for m in page.messages] == [2] and page.has_more is True
    (summary,) = await bob.list_conversations()
    assert (summary.conversation_id, summary.peer_id, summary.unread_count) == (cid, alice_id, 1)
    assert summary.last_message is not None and summary.last_message.seq == 3

    # a sync from 0 re-pushes everything: the SDK drops all of it as duplicates
    dropped = bob.stats.duplicates_dropped
    await bob.sync({cid: 0})
    await poll(
        lambda: bob.stats.duplicates_dropped == dropped + 3,
        WAIT_S,
        "bob.stats.duplicates_dropped == dropped + 3",
    )
    last = await alice.send_message("last one", recipient_id=bob_id)
    assert (await bob_messages.next(WAIT_S)).data["message_id"] == last.message_id
    assert bob.watermarks == {cid: 4}

    # same client_msg_id: the first ack again, nothing delivered twice
    again = await alice.send_message("other", recipient_id=bob_id, client_msg_id=last.client_msg_id)
    assert (again.message_id, again.seq) == (last.message_id, 4)

    with pytest.raises(sdk.InvalidPayload) as to_self:
        await alice.send_message("me", recipient_id=alice_id)
    assert to_self.value.event == "send_message"
    with pytest.raises(sdk.NotFound):
        await alice.get_history("no-such-conversation")
    with pytest.raises(sdk.InvalidPayload):
        await bob.mark_read(cid, 99)
    with pytest.raises(ValueError):
        await alice.send_message("nowhere")


async def test_editing_and_deleting_a_message(users: SdkUsers) -> None:
    alice, bob = await users.connect("alice"), await users.connect("bob")
    bob_changes = bob.events("message_edited", "message_deleted")
    sent = await alice.send_message("helo", recipient_id=users.id("bob"))
    cid, mid = sent.conversation_id, sent.message_id

    edited = await alice.edit_message(cid, mid, "hello")
    assert isinstance(edited, sdk.MessageChangeAck) and edited.edited_at is not None
    change = (await bob_changes.next(WAIT_S)).payload
    assert change == sdk.MessageChange(cid, mid, 1, "hello", edited_at=edited.edited_at)
    with pytest.raises(sdk.Forbidden):
        await bob.delete_message(cid, mid)

    deleted = await alice.delete_message(cid, mid)
    assert deleted.deleted_at is not None and deleted.edited_at is None
    change = (await bob_changes.next(WAIT_S)).payload
    assert isinstance(change, sdk.MessageChange) and change.text is None
    with pytest.raises(sdk.Conflict):
        await alice.edit_message(cid, mid, "undo")
    (message,) = (await bob.get_history(cid)).messages
    assert (message.seq, message.text, message.deleted_at) == (1, None, deleted.deleted_at)


async def test_presence_and_help_requests(users: SdkUsers) -> None:
    maya, sam = await users.connect("maya", "mentor"), await users.connect("sam")
    maya_id, sam_id = users.id("maya"), users.id("sam")
    sam_updates = sam.events("mentor_status_update")
    maya_help = maya.events("help_request_received")
    sam_help = sam.events("help_request_accepted", "help_request_declined")

    busy = await maya.update_mentor_status("busy", "grading")
    assert (busy.mentor_id, busy.status, busy.status_message) == (maya_id, "busy", "grading")
    update = await sam_updates.wait_for(
        "mentor_status_update", matching(mentor_id=maya_id, status="busy"), timeout=WAIT_S
    )
    assert isinstance(update.payload, sdk.MentorStatus) and update.payload.online
    available = await maya.update_mentor_status(
        "available", "ask me", status_data={"subjects": ["Math"]}
    )
    assert available.status == "available" and available.status_data == {"subjects": ["Math"]}
    mentors = {m.mentor_id: m for m in await sam.get_mentors()}
    assert mentors[maya_id].status == "available" and mentors[maya_id].online is True
    with pytest.raises(sdk.Forbidden) as forbidden:
        await sam.update_mentor_status("available")
    assert (forbidden.value.code, forbidden.value.event) == ("forbidden", "mentor_available")
    with pytest.raises(ValueError):
        await maya.update_mentor_status("asleep")

    created = await sam.request_help("Math", "integrals by parts", urgency="high")
    assert isinstance(created, sdk.HelpRequestCreated)
    assert created.status == "open" and created.delivered_to >= 1
    shown = await maya_help.wait_for(
        "help_request_received", matching(request_id=created.request_id), timeout=WAIT_S
    )
    assert isinstance(shown.payload, sdk.HelpRequest)
    assert (shown.payload.student_id, shown.payload.urgency) == (sam_id, "high")
    assert created.request_id in [r.request_id for r in await maya.list_help_requests()]
    assert [r.request_id for r in await sam.list_help_requests()] == [created.request_id]
    accepted = await maya.accept_help_request(created.request_id)
    assert (accepted.request_id, accepted.status) == (created.request_id, "accepted")
    told = await sam_help.wait_for(
        "help_request_accepted", matching(request_id=created.request_id), timeout=WAIT_S
    )
    assert told.payload == sdk.HelpRequestAccepted(created.request_id, maya_id, "Maya")
    with pytest.raises(sdk.Conflict):
        await maya.accept_help_request(created.request_id)

    targeted = await sam.request_help("Science", "lab report", mentor_id=maya_id)
    await maya_help.wait_for(
        "help_request_received", matching(request_id=targeted.request_id), timeout=WAIT_S
    )
    declined = await maya.decline_help_request(targeted.request_id, reason="in a session")
    assert declined.request_id == targeted.request_id
    await sam_help.wait_for(
        "help_request_declined", matching(request_id=targeted.request_id), timeout=WAIT_S
    )
    third = await sam.request_help("General", "study plan", urgency="low")
    cancelled = await sam.cancel_help_request(third.request_id)
    assert cancelled.status == "cancelled"
    with pytest.raises(sdk.Forbidden):
        await maya.request_help("Math", "mentors cannot ask")
    with pytest.raises(sdk.NotFound):
        await maya.accept_help_request("no-such-request")


async def test_calls_signalling_and_call_errors(users: SdkUsers) -> None:
    alice, bob = await users.connect("alice"), await users.connect("bob", "mentor")
    alice_id, bob_id = users.id("alice"), users.id("bob")
    bob_calls = bob.events("call_initiated", "call_signal", "call_ended")
    alice_calls = alice.events("call_accepted", "call_signal", "call_rejected")

    invitation = await alice.initiate_call(bob_id, "audio", call_data={"sdp": "offer"})
    assert isinstance(invitation, sdk.CallInvitation) and invitation.state == "ringing"
    ringing = await bob_calls.wait_for(
        "call_initiated", matching(call_id=invitation.call_id), timeout=WAIT_S
    )
    assert isinstance(ringing.payload, sdk.IncomingCall)
    assert (ringing.payload.caller_id, ringing.payload.call_type) == (alice_id, "audio")
    assert ringing.payload.call_data == {"sdp": "offer"}

    await alice.send_call_signal(invitation.call_id, {"type": "ice", "candidate": "c1"})
    signal = await bob_calls.wait_for("call_signal", timeout=WAIT_S)
    assert signal.payload == sdk.CallSignal(
        invitation.call_id, alice_id, {"type": "ice", "candidate": "c1"}
    )
    accepted = await bob.accept_call(invitation.call_id, call_data={"sdp": "answer"})
    assert accepted == sdk.CallState(invitation.call_id, "accepted")
    told = await alice_calls.wait_for("call_accepted", timeout=WAIT_S)
    assert isinstance(told.payload, sdk.CallAccepted) and told.payload.accepted_by == bob_id
    await bob.send_call_signal(invitation.call_id, {"type": "answer"})
    assert (await alice_calls.wait_for("call_signal", timeout=WAIT_S)).data[
        "from_user_id"
    ] == bob_id
    with pytest.raises(sdk.Conflict):
        await bob.accept_call(invitation.call_id)
    ended = await alice.end_call(invitation.call_id)
    assert ended.state == "ended"
    hangup = await bob_calls.wait_for("call_ended", timeout=WAIT_S)
    assert isinstance(hangup.payload, sdk.CallEnded)
    assert (hangup.payload.reason, hangup.payload.ended_by) == ("hangup", alice_id)

    second = await alice.initiate_call(bob_id)
    with pytest.raises(sdk.Forbidden):
        await alice.accept_call(second.call_id)  # only the receiver answers
    rejected = await bob.reject_call(second.call_id, reason="later")
    assert rejected.state == "rejected"
    refusal = await alice_calls.wait_for("call_rejected", timeout=WAIT_S)
    assert refusal.payload == sdk.CallRejected(second.call_id, bob_id, "later")
    with pytest.raises(sdk.NotFound) as unknown:
        await bob.accept_call("no-such-call")
    assert unknown.value.event == "accept_call"
    with pytest.raises(sdk.InvalidPayload):
        await alice.initiate_call(alice_id)

    pong = await alice.ping()
    assert pong.server_time and 0 < pong.rtt_s < WAIT_S


async def test_a_refused_token_raises_authentication_failed(gw: Gateway) -> None:
    client = sdk.InstantMentorClient(gw.ws, token="not-a-jwt")
    with pytest.raises(sdk.AuthenticationFailed):
        await client.connect()
    assert not client.connected


async def test_the_token_provider_and_both_event_apis(users: SdkUsers) -> None:
    calls: list[str] = []

    async def provide() -> str:
        calls.append("token")
        return users.token("dora")

    dora = sdk.InstantMentorClient(users.gateway.ws, token_provider=provide)
    users.clients.append(dora)
    seen: list[str] = []
    off = dora.on("*", lambda e: seen.append(e.name))
    snapshots: list[sdk.Event] = []

    async def on_snapshot(event: sdk.Event) -> None:
        snapshots.append(event)

    dora.on("mentor_status_snapshot", on_snapshot)
    async with dora:
        assert dora.session is not None and dora.session.user_id == users.id("dora")
        await poll(lambda: len(snapshots) == 1, WAIT_S, "len(snapshots) == 1")
        assert isinstance(snapshots[0].payload, list)
        assert seen[:1] == ["connected"] and "mentor_status_snapshot" in seen
        off()
        count = len(seen)
        await dora.ping()
    assert calls == ["token"] and len(seen) == count
    assert dora.closed and not dora.connected


def cli(gateway: Gateway, token: str, *args: str) -> list[str]:
    """The SDK's command line against ``gateway`` as ``token``'s user."""
    sdk_cli = [sys.executable, "-m", "instantmentor_client"]
    return [*sdk_cli, "--url", gateway.ws, "--token", token, *args]


async def run_cli(gateway: Gateway, token: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *cli(gateway, token, *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli(users: SdkUsers) -> None:
    gateway = users.gateway
    code, out, _ = await run_cli(gateway, users.token("mo", "mentor"), "status", "break", "tea")
    status = json.loads(out)
    assert code == 0 and (status["mentor_id"], status["status"]) == (users.id("mo"), "break")
    code, out, _ = await run_cli(gateway, users.token("sue"), "mentors")
    assert code == 0 and users.id("mo") in [m["mentor_id"] for m in json.loads(out)]

    # watch (a user with no other connection: what was sent before is caught up on connect)
    code, out, _ = await run_cli(gateway, users.token("sue"), "send", users.id("wes"), "hi wes")
    sent = json.loads(out)
    assert code == 0 and sent["seq"] == 1
    code, out, _ = await run_cli(
        gateway, users.token("wes"), "watch", "--count", "1", "message_received"
    )
    (line,) = out.splitlines()
    pushed = json.loads(line)
    assert code == 0 and pushed["event"] == "message_received"
    assert (pushed["data"]["message_id"], pushed["data"]["text"]) == (sent["message_id"], "hi wes")

    code, out, err = await run_cli(gateway, users.token("sue"), "status", "available")
    assert code == 1 and out == "" and err.startswith("error: forbidden (mentor_available)")


async def test_the_cli_call_help_and_interactive_chat(users: SdkUsers) -> None:
    gateway = users.gateway
    bob = await users.connect("bob", "mentor")
    bob_events = bob.events("call_initiated", "help_request_received", "message_received")
    code, out, _ = await run_cli(gateway, users.token("cy"), "call", users.id("bob"), "--no-wait")
    ringing = json.loads(out)
    assert code == 0 and ringing["state"] == "ringing"
    await bob_events.wait_for(
        "call_initiated", matching(call_id=ringing["call_id"]), timeout=WAIT_S
    )
    await bob.end_call(ringing["call_id"])
    code, out, _ = await run_cli(
        gateway, users.token("cy"), "help", "--subject", "Math", "--no-wait", "limits"
    )
    created = json.loads(out)
    assert code == 0 and created["status"] == "open"
    await bob_events.wait_for(
        "help_request_received", matching(request_id=created["request_id"]), timeout=WAIT_S
    )

    # chat: lines typed are sent; what the peer sends is printed; EOF ends it
    chat = await asyncio.create_subprocess_exec(
        *cli(gateway, users.token("cy"), "chat", "--to", users.id("bob")),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert chat.stdin is not None and chat.stdout is not None
    banner = await asyncio.wait_for(chat.stdout.readline(), 30)
    assert banner.startswith(b"chatting with " + users.id("bob").encode())
    chat.stdin.write(b"hello from the terminal\n")
    await chat.stdin.drain()
    typed = await bob_events.wait_for("message_received", timeout=WAIT_S)
    assert (typed.data["sender_id"], typed.data["text"]) == (
        users.id("cy"),
        "hello from the terminal",
    )
    await bob.send_message("hi terminal", conversation_id=typed.data["conversation_id"])
    printed = await asyncio.wait_for(chat.stdout.readline(), WAIT_S)
    assert printed.decode().rstrip().endswith("Bob: hi terminal")
    chat.stdin.close()
    assert await asyncio.wait_for(chat.wait(), 30) == 0
