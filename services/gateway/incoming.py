"""What the services send this gateway, delivered to its connections: replies, pushes, and
bundles of both.

A push is addressed by routing key (``user.<id>``, its ``CC``, or everyone) or to one
connection by header; this gateway delivers it to those of its connections it addresses,
framed once for all of them. A push a service sends again (it ran a redelivered command) is
dropped when it went out here already (:mod:`services.gateway.repeats`). A reply may ride on
a push, and is settled after it, as if it had been sent after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.gateway import metrics
from services.gateway.connections import Connection
from services.gateway.registry import Registry
from services.gateway.repeats import RecentFrames
from services.gateway.requests import Deliver, Requests
from services.gateway.snapshot import MentorSnapshot
from services.gateway.wire import OutgoingFrame
from shared.amqp import headers as h
from shared.amqp.delivery import Delivery
from shared.amqp.topology import BROADCAST_ALL
from shared.protocol.envelope import loads


@dataclass(eq=False, slots=True)
class Incoming:
    registry: Registry
    requests: Requests
    snapshot: MentorSnapshot  # kept current from the status broadcasts
    repeats: RecentFrames
    deliver: Deliver

    async def on_message(self, message: Delivery) -> None:
        if message.type == h.REPLY:
            self.requests.replied(message.correlation_id or "", message.body)
            return
        if message.type == h.BUNDLE:
            self._deliver_bundle(loads(message.body))
            return
        text = message.body.decode()
        headers = message.headers or {}
        spread_user, spread = headers.get(h.SPREAD_USER), headers.get(h.SPREAD_GATEWAYS)
        if isinstance(spread_user, str) and isinstance(spread, int):
            self.registry.spread_over(spread_user, spread)
            return
        target = headers.get(h.CONNECTION)
        if isinstance(target, str):
            self._to_connection(target, text, headers)
            return
        if not self._first_time(text, h.REPEAT in headers):
            self._settle_riding_reply(message, headers)
            return
        excluded = headers.get(h.EXCLUDE)
        followup = _followup(headers)
        key = message.routing_key or ""
        if key == BROADCAST_ALL:
            self.snapshot.observe_frame(text)
        frame = OutgoingFrame(text)  # framed once, for however many of them are here
        for connection in self._recipients(key, headers.get("CC")):
            if connection.id != excluded:
                self.deliver(connection, frame)
                if followup is not None:
                    connection.replace_followup(*followup)
        self._settle_riding_reply(message, headers)

    def _to_connection(self, connection_id: str, text: str, headers: dict[str, Any]) -> None:
        connection = self.registry.get(connection_id)
        if connection is None:
            return
        close_code = headers.get(h.CLOSE_CODE)
        if isinstance(close_code, int):  # a service's verdict, e.g. the cap over gateways
            connection.close_after_queued(close_code, text)
        elif self._first_time(text, h.REPEAT in headers):
            self.deliver(connection, text)

    def _settle_riding_reply(self, message: Delivery, headers: dict[str, Any]) -> None:
        """Settle the reply a push carries (after the push, as if sent after it)."""
        reply = headers.get(h.REPLY_BODY)
        if isinstance(reply, str | bytes):
            self.requests.replied(message.correlation_id or "", reply)

    def _first_time(self, text: str, repeat: bool) -> bool:
        """Whether to deliver a push frame: not when it is a service's repeat of one that
        went out here already (see :mod:`services.gateway.repeats`)."""
        if repeat and self.repeats.delivered(text):
            metrics.REPEATS_DROPPED.inc()
            return False
        self.repeats.note(text)
        return True

    def _deliver_bundle(self, entries: list[dict[str, Any]]) -> None:
        """The pushes and replies of several commands (see ``Publisher.bundle``), in order:
        each push to its users' connections here, each reply after its command's pushes (the
        replies of commands sent by other gateways are theirs: none is pending here)."""
        for entry in entries:
            text = entry.get("frame")
            if text is not None and self._first_time(text, "repeat" in entry):
                frame = OutgoingFrame(text)
                excluded, followup = entry.get("exclude"), entry.get("followup")
                for user_id in dict.fromkeys(entry["to"]):  # each user once
                    for connection in self.registry.of_user(user_id):
                        if connection.id != excluded:
                            self.deliver(connection, frame)
                            if followup is not None:
                                connection.replace_followup(*followup)
            reply = entry.get("reply")
            if reply is not None:
                self.requests.replied(reply[0], reply[1])

    def _recipients(self, key: str, cc: object) -> Iterable[Connection]:
        """This gateway's connections among a push's addressees (its key and its ``CC``)."""
        if key == BROADCAST_ALL:
            return list(self.registry)
        keys = [key, *cc] if isinstance(cc, list) else [key]
        users = {str(k).removeprefix("user.") for k in keys if str(k).startswith("user.")}
        if len(users) == 1:
            return self.registry.of_user(users.pop())
        return {c for user_id in users for c in self.registry.of_user(user_id)}


def _followup(headers: dict[str, Any]) -> tuple[str, float, str | None] | None:
    """``(key, after_s, frame)`` of a push that replaces what is pending under ``key``."""
    key = headers.get(h.FOLLOWUP_KEY)
    if not isinstance(key, str):
        return None
    after_ms, frame = headers.get(h.FOLLOWUP_AFTER_MS), headers.get(h.FOLLOWUP_FRAME)
    if isinstance(after_ms, int) and isinstance(frame, str | bytes):
        return key, after_ms / 1000, frame if isinstance(frame, str) else frame.decode()
    return key, 0.0, None
