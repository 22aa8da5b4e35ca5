"""The workloads against the peer (python-socketio + AsyncAioPikaManager).

* relay: the sender (on server A) emits ``relay`` ``{to, payload: {k, text}}`` with ack id =
  seq; delivered = the ``msg`` event at the receiver (on server B), matched by ``payload.k``.
  The equivalent of chat, signal and typing without their storage and rules.
* fanout: the mentor (on A) emits ``status`` ``{k, status, status_message}``; every student
  (on B) gets a ``status`` event. Same "latest delivered" accounting as ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import websockets

from bench.openloop.recorder import FanoutLog, MessageLog, SenderSide
from bench.openloop.scenario import (
    Fanout,
    PointToPoint,
    gather_bounded,
    key_of,
    seq_of,
    until_all_arrived,
)
from bench.openloop.schedule import Sender
from bench.openloop.sio_client import Packet, SocketIOClient
from bench.openloop.systems import PeerSystem

Payload = Callable[[str, int], dict[str, Any]]
"""The data of message ``seq`` whose id is ``key``."""
WARM_UP_ACK = 1_000_000_000  # ack ids of warm-up messages: never a measured seq


def record_acks(client: SocketIOClient, log: SenderSide) -> None:
    def on_packet(packet: Packet, at: float) -> None:
        if packet.ack_id is not None and not packet.name:
            log.on_reply(packet.ack_id, at, None, None)

    client.on_message = on_packet
    client.on_close = lambda reason: log.on_connection_lost("sender", reason)


def emit_sender(
    client: SocketIOClient, tag: str, log: SenderSide, event: str, data: Payload
) -> Sender:
    """Emits ``event`` with ``data(key, seq)`` and ack id = seq, never waiting for the ack."""

    async def send(seq: int) -> None:
        try:
            await client.emit(event, data(key_of(tag, seq), seq), ack_id=seq)
        except websockets.ConnectionClosed:
            log.on_send_failed(seq, "closed")

    return send


async def deliver_once(
    sender: SocketIOClient, receivers: list[SocketIOClient], event: str, data: Payload, tag: str
) -> None:
    """Warm up: emit ``data(key, attempt)`` until every receiver got one of step ``tag``
    (server B consumes from RabbitMQ only from its first client on)."""
    arrived = [
        r.expect(
            lambda p: p.name in ("msg", "status") and seq_of(p.args[0].get("k"), tag) is not None
        )
        for r in receivers
    ]

    async def send(attempt: int) -> None:
        await sender.emit(event, data(key_of(tag, attempt), attempt), ack_id=WARM_UP_ACK + attempt)

    await until_all_arrived(arrived, send, f"{event} from {sender.user_id}")


@dataclass
class Pair:
    sender: SocketIOClient
    receiver: SocketIOClient


def relay_payload(to: str, key: str, seq: int) -> dict[str, Any]:
    return {"to": to, "payload": {"k": key, "text": f"open-loop message {key}"}}


class PeerRelay(PointToPoint[Pair, PeerSystem]):
    workload = "relay"

    def __init__(self, target: PeerSystem, pairs: int, deflate: bool) -> None:
        super().__init__(target, pairs, deflate)
        self.system = target.name

    async def open_pair(self, tag: str, index: int) -> Pair:
        sender_id, receiver_id = f"{tag}s{index}", f"{tag}r{index}"
        return Pair(
            await SocketIOClient.connect(
                self.target.sender_url, {"user": sender_id}, sender_id, self.deflate
            ),
            await SocketIOClient.connect(
                self.target.receiver_url, {"user": receiver_id}, receiver_id, self.deflate
            ),
        )

    async def warm_up(self, pair: Pair, tag: str) -> None:
        data = partial(relay_payload, pair.receiver.user_id)
        await deliver_once(pair.sender, [pair.receiver], "relay", data, tag)

    def listen(self, pair: Pair, index: int, tag: str, log: MessageLog) -> Sender:
        def on_receiver_packet(packet: Packet, at: float) -> None:
            if packet.name == "msg":
                seq = seq_of(packet.args[0].get("k"), tag)
                if seq is not None:
                    log.on_delivered(seq, at)

        pair.receiver.on_message = on_receiver_packet
        pair.receiver.on_close = lambda reason: log.on_connection_lost("receiver", reason)
        record_acks(pair.sender, log)
        return emit_sender(
            pair.sender, tag, log, "relay", partial(relay_payload, pair.receiver.user_id)
        )

    async def close_pair(self, pair: Pair) -> None:
        await asyncio.gather(pair.sender.close(), pair.receiver.close())


def status_payload(key: str, seq: int) -> dict[str, Any]:
    return {"k": key, "status": "available" if seq % 2 == 0 else "busy", "status_message": key}


class PeerFanout(Fanout[SocketIOClient, PeerSystem]):
    def __init__(self, target: PeerSystem, students: int, deflate: bool) -> None:
        super().__init__(target, students, deflate)
        self.system = target.name

    async def connect(self, run_tag: str) -> None:
        mentor_id = f"{run_tag}m"
        self.mentor = await SocketIOClient.connect(
            self.target.sender_url, {"user": mentor_id}, mentor_id, self.deflate
        )

        def student(user_id: str) -> Any:
            auth = {"user": user_id, "student": True}
            return SocketIOClient.connect(self.target.receiver_url, auth, user_id, self.deflate)

        self.students = await gather_bounded(
            partial(student, f"{run_tag}st{i}") for i in range(self.student_count)
        )

    async def warm_up(self, tag: str) -> None:
        assert self.mentor is not None
        await deliver_once(self.mentor, self.students, "status", status_payload, tag)

    def listen(self, tag: str, log: FanoutLog) -> Sender:
        assert self.mentor is not None
        for index, student in enumerate(self.students):
            student.on_message = partial(self._on_student_packet, index, tag, log)
            student.on_close = lambda reason: log.on_connection_lost("student", reason)
        record_acks(self.mentor, log)
        return emit_sender(self.mentor, tag, log, "status", status_payload)

    @staticmethod
    def _on_student_packet(index: int, tag: str, log: FanoutLog, packet: Packet, at: float) -> None:
        if packet.name == "status":
            change = seq_of(packet.args[0].get("k"), tag)
            if change is not None:
                log.on_push(index, change, at)
