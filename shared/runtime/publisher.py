"""How a service's effects reach the broker: pushes, facts, timers and the reply.

Fewer, fuller messages: the publish is the largest cost per command, in the service, the
broker and the gateway alike. So
* consecutive pushes of the *same frame* to several users (a chat message to its recipient
  and to the sender's other connections; a call's new state to both parties) are one message,
  routed to every user's key at once (RabbitMQ's sender-selected distribution, ``CC``);
* when a handler's only effect is one push, the reply rides on it, CC'd to the asking
  gateway (``to.<its queue>``), which delivers the frames and then settles the reply.

Pushes to one destination are published one after another, so each recipient gets them in the
order the handler made them; everything else at once.

The commands of a gateway's batch go one step further: the pushes and replies of all of them
are one :data:`shared.amqp.headers.BUNDLE` message, routed to every addressee's key at once
(:meth:`Publisher.bundle`); each gateway delivers what is for its own connections, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from shared.amqp import headers as h
from shared.amqp.broker import Broker
from shared.amqp.topology import BROADCAST_ALL, delay_generation, reply_key, user_key
from shared.protocol.envelope import Command, Reply, dumps, dumps_bytes
from shared.runtime.outbox import (
    BroadcastPush,
    ConnectionClose,
    Outbox,
    Push,
    UserPush,
    UserSpread,
)
from shared.runtime.push_order import in_order_groups, merge_same_frames

REPEAT_MARK = {h.REPEAT: 1}
MAX_KNOWN_DELAYS = 1_000  # one-off durations remembered at most (they are declared again)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one handled command left to publish: its effects, and the reply it asked for."""

    outbox: Outbox
    reply: Reply
    reply_to: str | None
    correlation_id: str | None
    repeat: bool = False  # of a command run again: its pushes may have gone out already

    @property
    def bundles(self) -> bool:
        """Whether it can travel in a bundle: user pushes and a reply, nothing else."""
        return (
            not self.outbox.facts
            and not self.outbox.timers
            and all(isinstance(push, UserPush) for push in self.outbox.pushes)
        )


class Publisher:
    def __init__(self, broker: Broker, service: str) -> None:
        self.broker = broker
        self.service = service
        self._delay_queues: dict[int, tuple[str, int]] = {}  # ms → (queue, its generation)

    async def outcome(self, outcome: Outcome, confirm: bool = True) -> None:
        """Every effect of one handled command, then its reply (when one was asked for);
        the pushes of an outcome that may have gone out before are marked as repeats."""
        outbox, repeat = outcome.outbox, outcome.repeat
        pushes = merge_same_frames(outbox.pushes)
        reply_to, correlation_id = outcome.reply_to, outcome.correlation_id
        answer = (outcome.reply, reply_to, correlation_id) if reply_to and correlation_id else None
        if (
            answer is not None
            and len(pushes) == 1
            and isinstance(pushes[0], UserPush)
            and not outbox.facts
            and not outbox.timers
        ):
            await self.push(pushes[0], confirm, reply=answer, repeat=repeat)
            return
        jobs: list[Awaitable[object]] = [
            self._in_order(group, confirm, repeat) for group in in_order_groups(pushes)
        ]
        jobs += [self.fact(fact.name, fact.data) for fact in outbox.facts]
        jobs += [self.timer(timer.event, timer.data, timer.delay_s) for timer in outbox.timers]
        if jobs:
            await asyncio.gather(*jobs)
        if answer is not None:
            await self.reply(*answer, confirm)

    async def bundle(self, outcomes: list[Outcome], confirm: bool = True) -> None:
        """The pushes and replies of several commands (each :attr:`Outcome.bundles`) as one
        message to every user and gateway they address; a gateway delivers the entries for
        its connections in order, each reply after the pushes of its command."""
        entries: list[dict[str, Any]] = []
        keys: dict[str, None] = {}  # ordered set
        for outcome in outcomes:
            before = len(entries)
            for push in merge_same_frames(outcome.outbox.pushes):
                assert isinstance(push, UserPush)
                users = [push.user_id, *push.also_to]
                keys.update((user_key(user), None) for user in users)
                entries.append(_bundle_entry(push, users, outcome.repeat))
            if outcome.reply_to and outcome.correlation_id:
                keys[reply_key(outcome.reply_to)] = None
                reply = [outcome.correlation_id, outcome.reply.model_dump(exclude_none=True)]
                if len(entries) > before:  # settled after its command's last push
                    entries[-1]["reply"] = reply
                else:
                    entries.append({"reply": reply})
        if not keys:
            return
        first, *cc = keys
        await self.broker.publish(
            self.broker.topology.push,
            first,
            dumps_bytes(entries),
            persistent=False,
            confirm=confirm,
            message_type=h.BUNDLE,
            headers={"CC": cc} if cc else None,
        )

    async def _in_order(self, pushes: list[Push], confirm: bool, repeat: bool) -> None:
        for push in pushes:
            await self.push(push, confirm, repeat=repeat)

    async def reply(
        self, reply: Reply, reply_to: str, correlation_id: str, confirm: bool = True
    ) -> None:
        await self.broker.publish(
            "",
            reply_to,
            reply.model_dump_json(exclude_none=True).encode(),
            persistent=False,
            confirm=confirm,
            correlation_id=correlation_id,
            message_type=h.REPLY,
        )

    async def push(
        self,
        push: Push,
        confirm: bool = True,
        reply: tuple[Reply, str, str] | None = None,
        repeat: bool = False,
    ) -> bool:
        """Publish one push; False when no gateway holds the addressed user/connection
        (known only with ``confirm`` and without a ``reply`` riding on it). ``repeat``: it
        may have gone out before (see :data:`shared.amqp.headers.REPEAT`)."""
        t = self.broker.topology
        if isinstance(push, UserSpread):  # a gateway that is gone has nobody to limit
            return await self.broker.publish(
                "",
                push.reply_to,
                b"",
                persistent=False,
                confirm=confirm,
                message_type=h.PUSH,
                headers={h.SPREAD_USER: push.user_id, h.SPREAD_GATEWAYS: push.gateways},
            )
        if isinstance(push, ConnectionClose):
            return await self.broker.publish(
                "",
                push.reply_to,
                push.reason.encode(),
                persistent=False,
                confirm=confirm,
                mandatory=confirm,
                message_type=h.PUSH,
                headers={h.CONNECTION: push.connection_id, h.CLOSE_CODE: push.code},
            )
        body = dumps_bytes(push.frame)
        marks = REPEAT_MARK if repeat else {}
        if isinstance(push, UserPush):
            headers = _user_push_headers(push, repeat)
            cc = [user_key(user_id) for user_id in push.also_to]
            correlation_id = None
            if reply is not None:
                answer, reply_to, correlation_id = reply
                cc.append(reply_key(reply_to))
                headers[h.REPLY_BODY] = answer.model_dump_json(exclude_none=True)
            if cc:
                headers["CC"] = cc
            return await self.broker.publish(
                t.push,
                user_key(push.user_id),
                body,
                persistent=False,
                confirm=confirm,
                mandatory=confirm and reply is None,
                correlation_id=correlation_id,
                message_type=h.PUSH,
                headers=headers or None,
            )
        if isinstance(push, BroadcastPush):
            return await self.broker.publish(
                t.push,
                BROADCAST_ALL,
                body,
                persistent=False,
                confirm=confirm,
                message_type=h.PUSH,
                headers=marks or None,
            )
        return await self.broker.publish(
            "",
            push.reply_to,
            body,
            persistent=False,
            confirm=confirm,
            mandatory=confirm,
            message_type=h.PUSH,
            headers={h.CONNECTION: push.connection_id} | marks,
        )

    async def fact(self, fact: str, data: dict[str, Any]) -> None:
        await self.broker.publish(self.broker.topology.domain, fact, command_body(fact, data))

    async def command(self, event: str, data: dict[str, Any]) -> None:
        await self.broker.publish(
            self.broker.topology.commands, f"{self.service}.{event}", command_body(event, data)
        )

    async def again(
        self,
        command: Command,
        command_id: str | None,
        deadline_ms: int | None,
        reply_to: str | None,
        attempts: int,
        dead: bool,
    ) -> None:
        """One command of a batch that failed (its ``attempts`` th try), back to this
        service's queue on its own (or, ``dead``, to its dead letters), as the gateway would
        have sent it alone."""
        t = self.broker.topology
        headers: dict[str, Any] = {h.ATTEMPTS: attempts}
        if deadline_ms is not None:
            headers[h.DEADLINE] = deadline_ms
        await self.broker.publish(
            t.dead_letters if dead else t.commands,
            self.service if dead else f"{self.service}.{command.event}",
            command.model_dump_json(include=set(Command.model_fields)).encode(),
            reply_to=reply_to,
            correlation_id=command_id,
            message_id=command_id,
            headers=headers,
        )

    async def timer(self, event: str, data: dict[str, Any], delay_s: float) -> None:
        delay_ms = max(1, round(delay_s * 1000))
        generation = delay_generation(time.time())
        queue, declared = self._delay_queues.get(delay_ms, ("", -1))
        if declared != generation:
            queue = await self.broker.declare_delay_queue(self.service, delay_ms, generation)
            if len(self._delay_queues) > MAX_KNOWN_DELAYS:
                self._delay_queues.clear()
            self._delay_queues[delay_ms] = (queue, generation)
        await self.broker.publish("", queue, command_body(event, data))


def command_body(event: str, data: dict[str, Any]) -> bytes:
    return dumps_bytes({"event": event, "data": data})


def _bundle_entry(push: UserPush, users: list[str], repeat: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"to": users, "frame": dumps(push.frame)}
    if repeat:
        entry["repeat"] = 1
    if push.exclude_connection:
        entry["exclude"] = push.exclude_connection
    if push.followup is not None:
        frame = dumps(push.followup.frame) if push.followup.frame is not None else None
        entry["followup"] = [push.followup.key, push.followup.after_s, frame]
    return entry


def _user_push_headers(push: UserPush, repeat: bool) -> dict[str, Any]:
    headers: dict[str, Any] = dict(REPEAT_MARK) if repeat else {}
    if push.exclude_connection:
        headers[h.EXCLUDE] = push.exclude_connection
    if push.followup is not None:
        headers[h.FOLLOWUP_KEY] = push.followup.key
        if push.followup.frame is not None:
            headers[h.FOLLOWUP_AFTER_MS] = round(push.followup.after_s * 1000)
            headers[h.FOLLOWUP_FRAME] = dumps(push.followup.frame)
    return headers
