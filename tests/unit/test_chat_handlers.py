"""Chat's send_message effects when the message already exists (no broker, no database)."""

from __future__ import annotations

from typing import Any, cast

from services.chat.domain import Message, Sent
from services.chat.handlers import ChatHandlers
from services.chat.store import ChatStore
from services.chat.writer import GroupWriter
from shared.auth import Identity, Role
from shared.protocol.chat import SendMessage
from shared.protocol.envelope import CommandOrigin
from shared.runtime.outbox import Request, UserPush
from shared.settings import Settings

STORED = Message(
    id="m1",
    conversation_id="dm_ab",
    seq=1,
    sender_id="alice",
    sender_name="Alice",
    recipient_id="bob",
    text="hi",
    sent_at=0.0,
    client_msg_id="k1",
    command_id="cmd-1",
)


class FoundWriter:
    """A writer whose store already holds STORED under every key."""

    def submit(self, op: Any) -> Any:
        async def found() -> Sent:
            return Sent(STORED, created=False)

        return found()


async def _send(command_id: str, redelivered: bool) -> Request:
    async def deliver_now(_: Any) -> bool:
        return True

    handlers = ChatHandlers(
        Settings(), cast(ChatStore, None), cast(GroupWriter, cast(Any, FoundWriter()))
    )
    req = Request(
        event="send_message",
        data={},
        payload=SendMessage(recipient_id="bob", text="hi", client_msg_id="k1"),
        user=Identity("alice", Role.STUDENT, "Alice"),
        origin=CommandOrigin(gateway_id="g", connection_id="c1", reply_to="q"),
        redelivered=redelivered,
        deliver_now=deliver_now,
        command_id=command_id,
    )
    await handlers.send_message(req)
    return req


async def test_a_redelivered_command_pushes_its_message_again() -> None:
    req = await _send("cmd-1", redelivered=True)
    assert req.out.reply is not None and req.out.reply["message_id"] == "m1"
    pushed = [p.user_id for p in req.out.pushes if isinstance(p, UserPush)]
    assert pushed == ["bob", "alice"]


async def test_a_clients_resend_gets_the_first_ack_and_pushes_nothing() -> None:
    req = await _send("cmd-2", redelivered=False)
    assert req.out.reply is not None and req.out.reply["message_id"] == "m1"
    assert req.out.pushes == []
