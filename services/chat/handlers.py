"""Chat's handlers: each turns one command, fact or timer into store steps and effects.

Ordering: a handler that writes submits its operation to the group writer *before its first
``await``*. The runtime starts handlers in delivery order, so the writer sees one
connection's commands in the order they were sent, and numbers a sender's messages in that
order even with many workers.
"""

from __future__ import annotations

from pydantic import BaseModel

from services.chat import domain, views
from services.chat.domain import Draft, Receipt
from services.chat.store import ChatStore
from services.chat.writer import GroupWriter
from services.chat.writes import ChangeOp, ReceiptOp, SendOp
from shared.errors import NotFound
from shared.protocol.base import ServerPush
from shared.protocol.chat import (
    DeleteMessage,
    EditMessage,
    GetHistory,
    MessageDeleteAck,
    MessageDeleted,
    MessageEditAck,
    MessageEdited,
    MessageReceipt,
    SendMessage,
    Sync,
    Typing,
)
from shared.protocol.domain import CONNECTIONS_CHANGED, ConnectionsChanged
from shared.protocol.envelope import CommandOrigin
from shared.runtime.outbox import Followup, Request
from shared.runtime.routes import Routes, command, fact, routes, timer
from shared.settings import Settings

SYNC_PUSH = "sync_push"
# ``sync`` answers ``{}`` and then pushes. The runtime publishes a handler's effects before its
# reply, so the pushes go through a (durable) timer, late enough to follow the reply.
SYNC_PUSH_DELAY_S = 0.1


class SyncPush(BaseModel):
    """The data of the ``sync_push`` timer: what one connection asked to catch up on."""

    origin: CommandOrigin
    since: dict[str, int]


class ChatHandlers:
    def __init__(self, settings: Settings, store: ChatStore, writer: GroupWriter) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer

    def table(self) -> Routes:
        return routes(
            command("send_message", self.send_message),
            command("message_delivered", self.message_delivered),
            command("message_read", self.message_read),
            command("user_typing", self.user_typing),
            command("user_stopped_typing", self.user_stopped_typing),
            command("get_history", self.get_history),
            command("list_conversations", self.list_conversations),
            command("sync", self.sync),
            command("edit_message", self.edit_message),
            command("delete_message", self.delete_message),
            timer(SYNC_PUSH, SyncPush, self.sync_push),
            fact(CONNECTIONS_CHANGED, self.connections_changed),
        )

    # -- messages --------------------------------------------------------------------------

    async def send_message(self, req: Request) -> None:
        payload = req.payload_as(SendMessage)
        sender = req.sender
        draft = Draft(
            sender_id=sender.user_id,
            sender_name=sender.name,
            target=domain.target(sender.user_id, payload.recipient_id, payload.conversation_id),
            text=payload.text,
            client_msg_id=payload.client_msg_id,
            call_id=payload.call_id,
            command_id=req.command_id,
        )
        sent = await self.writer.submit(SendOp(draft))
        message = sent.message
        req.out.reply = views.sent_ack(message)
        if not sent.created and (req.command_id is None or message.command_id != req.command_id):
            return  # a client's resend of a delivered message: the first attempt pushed it
        # Created now, or this very command redelivered (its pushes may never have gone out:
        # a broker blip or a crash after the commit): push (again). Clients dedupe by id.
        view = views.received(message)
        req.out.push_user(message.recipient_id, view)
        req.out.push_user(
            message.sender_id,
            view,
            exclude_connection=req.origin.connection_id if req.origin else None,
        )

    async def message_delivered(self, req: Request) -> None:
        await self._receipt(req, Receipt.DELIVERED)

    async def message_read(self, req: Request) -> None:
        await self._receipt(req, Receipt.READ)

    async def _receipt(self, req: Request, kind: Receipt) -> None:
        payload = req.payload_as(MessageReceipt)
        op = ReceiptOp(payload.conversation_id, req.sender.user_id, kind, payload.up_to_seq)
        change = await self.writer.submit(op)
        req.out.reply = {}
        if change is not None:
            req.out.push_user(change.to_user_id, views.status(change))

    async def edit_message(self, req: Request) -> None:
        p = req.payload_as(EditMessage)
        ids, user_id = (p.conversation_id, p.message_id), req.sender.user_id
        window_s = self.settings.edit_window_s
        await self._change(
            req,
            ChangeOp(*ids, lambda c, m, at: domain.edit(c, m, user_id, ids, p.text, at, window_s)),
            MessageEdited,
            MessageEditAck,
        )

    async def delete_message(self, req: Request) -> None:
        p = req.payload_as(DeleteMessage)
        ids, user_id = (p.conversation_id, p.message_id), req.sender.user_id
        await self._change(
            req,
            ChangeOp(*ids, lambda c, m, at: domain.delete(c, m, user_id, ids, at)),
            MessageDeleted,
            MessageDeleteAck,
        )

    async def _change(
        self, req: Request, op: ChangeOp, push: type[ServerPush], ack: type[BaseModel]
    ) -> None:
        """A change to a stored message: the ``ack`` to the sender, the ``push`` to every
        connection of both participants (again when a command is repeated: clients apply it
        once)."""
        message = await self.writer.submit(op)
        shown, req.out.reply = views.changed(message, push, ack)
        for participant in (message.recipient_id, message.sender_id):
            req.out.push_user(participant, shown)

    # -- typing ----------------------------------------------------------------------------

    async def user_typing(self, req: Request) -> None:
        await self._typing(req, started=True)

    async def user_stopped_typing(self, req: Request) -> None:
        await self._typing(req, started=False)

    async def _typing(self, req: Request, started: bool) -> None:
        """Transient: nothing is stored. ``user_typing`` arms, on each of the peer's
        connections, a ``user_stopped_typing`` that follows unless refreshed or stopped first
        (a push follow-up, so no durable timer and no replica has to remember it)."""
        payload = req.payload_as(Typing)
        sender = req.sender
        named = domain.target(sender.user_id, payload.recipient_id, payload.conversation_id)
        peer_id = named.recipient_id
        if peer_id is None:
            found = await self.store.participants(named.conversation_id)
            peer_id = domain.visible_to(found, sender.user_id, named.conversation_id).peer_of(
                sender.user_id
            )
        key = f"typing:{named.conversation_id}:{sender.user_id}"
        notice = (named.conversation_id, sender.user_id, sender.name)
        stop = views.typing_notice(*notice, started=False)
        if started:
            start = views.typing_notice(*notice, started=True)
            followup = Followup(key, self.settings.typing_timeout_s, stop.frame)
            req.out.push_user(peer_id, start, followup=followup)
        else:
            req.out.push_user(peer_id, stop, followup=Followup(key))
        req.out.reply = {}

    # -- reading ---------------------------------------------------------------------------

    async def get_history(self, req: Request) -> None:
        payload = req.payload_as(GetHistory)
        user_id = req.sender.user_id
        found = await self.store.conversations([payload.conversation_id])
        conversation = domain.visible_to(
            found.get(payload.conversation_id), user_id, payload.conversation_id
        )
        rows, markers = await self.store.history(conversation.id, payload.before_seq, payload.limit)
        page, has_more = domain.page(rows, payload.limit)
        req.out.reply = views.history(conversation.id, page, markers, has_more)

    async def list_conversations(self, req: Request) -> None:
        user_id = req.sender.user_id
        listing = await self.store.overview(user_id)
        req.out.reply = views.conversation_list(
            [
                views.summary(conversation, user_id, last, markers, unread)
                for conversation, last, markers, unread in listing
            ]
        )

    async def sync(self, req: Request) -> None:
        """Check every conversation named, answer ``{}``, then (timer) push what is newer."""
        payload = req.payload_as(Sync)
        user_id = req.sender.user_id
        if req.origin is None:
            raise NotFound("sync needs a connection to push to")
        found = await self.store.conversations(payload.since)
        for conversation_id in payload.since:
            domain.visible_to(found.get(conversation_id), user_id, conversation_id)
        req.out.reply = {}
        if payload.since:
            push = SyncPush(origin=req.origin, since=dict(payload.since))
            req.out.schedule(SYNC_PUSH, push.model_dump(), SYNC_PUSH_DELAY_S)

    async def sync_push(self, req: Request) -> None:
        push = req.payload_as(SyncPush)
        for message in await self.store.after(push.since):
            req.out.push_connection(push.origin, views.received(message))

    # -- connections -----------------------------------------------------------------------

    async def connections_changed(self, req: Request) -> None:
        """Catch-up: each message a user has not marked delivered, to their new connection
        (the newest ``IM_CATCHUP_LIMIT``; the client fetches the rest with ``sync``).

        Only messages sent before the gateway announced the connection (``fact.at``, after it
        bound the user): later ones reach the connection live, and must not come twice. One
        query for the whole batch of connections."""
        opened = [f for f in req.payload_as(ConnectionsChanged).opened if not f.resumed]
        if not opened:
            return  # resumed: the gateway re-announced connections that were never gone
        pending = await self.store.undelivered(
            {f.user_id for f in opened}, sent_before=max(f.at for f in opened)
        )
        for opening in opened:
            waiting = [m for m in pending.get(opening.user_id, ()) if m.sent_at < opening.at]
            origin = CommandOrigin(
                gateway_id=opening.gateway_id,
                connection_id=opening.connection_id,
                reply_to=opening.reply_to,
            )
            for message in domain.catch_up(waiting, self.settings.catchup_limit):
                req.out.push_connection(origin, views.received(message))
