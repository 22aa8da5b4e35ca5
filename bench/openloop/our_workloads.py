"""The workloads against our gateway: chat, signal, typing (point-to-point) and fanout.

Every measured command carries ``ref = <step tag>.<seq>``; its ``ack``/``error`` frame is the
reply. What counts as delivered:

* chat: ``message_received`` at the receiver, matched by ``client_msg_id`` (= the ref);
* signal: ``call_signal`` at the other party of an accepted call, matched by ``signal.k``;
* typing: ``user_typing`` at the receiver. The push has no id of its own, so the k-th push
  of a pair is matched to the pair's k-th send (FIFO). Loss counts stay exact; under loss
  or reordering individual latencies are approximate (a later push stands in for a lost one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import websockets

from bench.openloop.gateway_client import Frame, GatewayClient, reply_of
from bench.openloop.gateway_sio_client import SocketIOGatewayClient
from bench.openloop.recorder import MessageLog, SenderSide
from bench.openloop.scenario import PointToPoint, key_of, seq_of, until_all_arrived
from bench.openloop.schedule import Sender
from bench.openloop.systems import OurSystem

Matcher = Callable[[Frame], int | None]
SIGNAL = {"type": "candidate", "candidate": "candidate:1 1 udp 2122260223 10.0.0.2 50000 typ host"}


@dataclass
class Pair:
    sender: GatewayClient
    receiver: GatewayClient
    call_id: str = ""


def record_replies(client: GatewayClient, tag: str, log: SenderSide) -> None:
    """Route the ``ack``/``error`` frames of step ``tag`` on ``client`` into ``log``."""

    def on_frame(frame: Frame, at: float) -> None:
        reply = reply_of(frame)
        if reply is None:
            return
        ref, code, retry_after_ms = reply
        seq = seq_of(ref, tag)
        if seq is not None:
            log.on_reply(seq, at, code, retry_after_ms)
        elif ref is None and code is not None:
            log.errors[f"{code} (no ref)"] += 1

    client.on_message = on_frame
    client.on_close = lambda reason: log.on_connection_lost("sender", reason)


def command_sender(
    client: GatewayClient, tag: str, log: SenderSide, command: Callable[[str, int], Any]
) -> Sender:
    """Sends ``command(key, seq)`` = ``(event, data)`` with ``ref = key``, never waiting."""

    async def send(seq: int) -> None:
        key = key_of(tag, seq)
        event, data = command(key, seq)
        try:
            await client.send(event, data, ref=key)
        except websockets.ConnectionClosed:
            log.on_send_failed(seq, "closed")

    return send


class OurPointToPoint(PointToPoint[Pair, OurSystem]):
    system = "ours"

    async def _client(self, user_id: str) -> GatewayClient:
        token = self.target.token(user_id)
        return await GatewayClient.connect(self.target.ws_url, token, user_id, self.deflate)

    async def open_pair(self, tag: str, index: int) -> Pair:
        pair = Pair(await self._client(f"{tag}s{index}"), await self._client(f"{tag}r{index}"))
        await self.set_up_pair(pair)
        return pair

    async def set_up_pair(self, pair: Pair) -> None:
        """Whatever the pair needs before its first message."""

    def command(self, pair: Pair, key: str, seq: int) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def matcher(self, pair: Pair, index: int, tag: str) -> Matcher:
        """The seq of a measured delivery in a receiver frame, else None."""
        raise NotImplementedError

    async def warm_up(self, pair: Pair, tag: str) -> None:
        matches = self.matcher(pair, 0, tag)
        arrived = pair.receiver.expect(lambda frame: matches(frame) is not None)

        async def send(attempt: int) -> None:
            await pair.sender.request(*self.command(pair, key_of(tag, attempt), attempt))

        await until_all_arrived([arrived], send, f"{self.workload} to {pair.receiver.user_id}")

    def listen(self, pair: Pair, index: int, tag: str, log: MessageLog) -> Sender:
        matches = self.matcher(pair, index, tag)

        def on_receiver_frame(frame: Frame, at: float) -> None:
            seq = matches(frame)
            if seq is not None:
                log.on_delivered(seq, at)

        pair.receiver.on_message = on_receiver_frame
        pair.receiver.on_close = lambda reason: log.on_connection_lost("receiver", reason)
        record_replies(pair.sender, tag, log)
        return command_sender(pair.sender, tag, log, lambda k, s: self.command(pair, k, s))

    async def close_pair(self, pair: Pair) -> None:
        await asyncio.gather(pair.sender.close(), pair.receiver.close())


class Chat(OurPointToPoint):
    workload = "chat"

    def command(self, pair: Pair, key: str, seq: int) -> tuple[str, dict[str, Any]]:
        text = f"open-loop message {key}"
        return "send_message", {
            "recipient_id": pair.receiver.user_id,
            "text": text,
            "client_msg_id": key,
        }

    def matcher(self, pair: Pair, index: int, tag: str) -> Matcher:
        def matches(frame: Frame) -> int | None:
            if frame.get("event") != "message_received":
                return None
            return seq_of(frame["data"].get("client_msg_id"), tag)

        return matches


class Signal(OurPointToPoint):
    workload = "signal"

    async def set_up_pair(self, pair: Pair) -> None:
        """An accepted call between the pair (retried while presence has not yet seen the
        receiver's connection: the system refuses a call to an offline user at once)."""
        for _ in range(50):
            ack = await pair.sender.request(
                "initiate_call", {"receiver_id": pair.receiver.user_id, "call_type": "audio"}
            )
            if ack.get("state") == "ringing":
                pair.call_id = str(ack["call_id"])
                await pair.receiver.request("accept_call", {"call_id": pair.call_id})
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"call to {pair.receiver.user_id} never rang: {ack}")

    def command(self, pair: Pair, key: str, seq: int) -> tuple[str, dict[str, Any]]:
        return "call_signal", {"call_id": pair.call_id, "signal": {**SIGNAL, "i": seq, "k": key}}

    def matcher(self, pair: Pair, index: int, tag: str) -> Matcher:
        def matches(frame: Frame) -> int | None:
            if frame.get("event") != "call_signal":
                return None
            return seq_of((frame["data"].get("signal") or {}).get("k"), tag)

        return matches

    async def close_pair(self, pair: Pair) -> None:
        try:
            await pair.sender.request("end_call", {"call_id": pair.call_id})
        except (RuntimeError, ConnectionError, TimeoutError):
            pass  # the call ends anyway once both have been gone for the reconnect grace
        await super().close_pair(pair)


class Typing(OurPointToPoint):
    workload = "typing"
    matched_by_order = True

    def command(self, pair: Pair, key: str, seq: int) -> tuple[str, dict[str, Any]]:
        return "user_typing", {"recipient_id": pair.receiver.user_id}

    def matcher(self, pair: Pair, index: int, tag: str) -> Matcher:
        pushes = 0

        def matches(frame: Frame) -> int | None:
            nonlocal pushes
            data = frame.get("data") or {}
            if frame.get("event") != "user_typing" or data.get("user_id") != pair.sender.user_id:
                return None
            # the pair sends seqs index, index + P, index + 2P, ...: the k-th push is the k-th
            seq = index + pushes * self.pair_count
            pushes += 1
            return seq

        return matches


class ChatOverSocketIO(Chat):
    """The chat workload with every client on ``/socket.io/`` (PROTOCOL §8) instead of
    ``/ws``: the same gateway and services, to compare the two bindings side by side."""

    workload = "sio-chat"

    async def _client(self, user_id: str) -> GatewayClient:
        token = self.target.token(user_id)
        return await SocketIOGatewayClient.connect(self.target.ws_url, token, user_id, self.deflate)
