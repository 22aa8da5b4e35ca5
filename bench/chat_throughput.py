"""Chat through the whole stack (gateway + chat service, raw WebSockets): messages/s and the
latency of ``send_message`` → ``ack`` and → ``message_received`` on the recipient.

Two runs side by side: the baseline (one pair, one message in flight) and the load
(``--pairs`` pairs with ``--window`` messages in flight each); the ratio is printed.

    python -m bench.chat_throughput [--pairs 10 --messages 500 --window 50 --replicas 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets

from bench.common import broker_url, summary
from tests.support.stack import NO_RATE_LIMITS, Stack


@dataclass
class Samples:
    ack: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)
    errors: int = 0


async def _until(ws: websockets.ClientConnection, event: str) -> None:
    while json.loads(await ws.recv()).get("event") != event:
        pass


async def pair(stack: Stack, url: str, n: str, messages: int, window: int, out: Samples) -> None:
    sender = await websockets.connect(f"{url}?token={stack.token(f'snd{n}')}", max_size=None)
    receiver = await websockets.connect(f"{url}?token={stack.token(f'rcv{n}')}", max_size=None)
    await _until(sender, "connected")
    await _until(receiver, "connected")
    sent_at: dict[str, float] = {}
    slots = asyncio.Semaphore(window)
    acked, received = asyncio.Event(), asyncio.Event()

    async def read_sender() -> None:
        count = 0
        async for raw in sender:
            frame = json.loads(raw)
            if frame.get("event") in ("ack", "error") and frame.get("ref") in sent_at:
                out.errors += frame["event"] == "error"
                out.ack.append(time.perf_counter() - sent_at[frame["ref"]])
                slots.release()
                count += 1
                if count == messages:
                    acked.set()

    async def read_receiver() -> None:
        count = 0
        async for raw in receiver:
            frame = json.loads(raw)
            if frame.get("event") == "message_received":
                out.push.append(time.perf_counter() - sent_at[frame["data"]["client_msg_id"]])
                count += 1
                if count == messages:
                    received.set()

    readers = [asyncio.create_task(read_sender()), asyncio.create_task(read_receiver())]
    for i in range(messages):
        await slots.acquire()
        key = f"{n}-{i}"
        sent_at[key] = time.perf_counter()
        data = {"recipient_id": f"rcv{n}", "text": f"message {i}", "client_msg_id": key}
        await sender.send(json.dumps({"event": "send_message", "ref": key, "data": data}))
    await asyncio.wait_for(acked.wait(), 300)
    await asyncio.wait_for(received.wait(), 300)
    for reader in readers:
        reader.cancel()
    await sender.close()
    await receiver.close()


async def measure(
    stack: Stack, url: str, label: str, pairs: int, messages: int, window: int
) -> float:
    out = Samples()
    start = time.perf_counter()
    await asyncio.gather(
        *(pair(stack, url, f"{label}{n}", messages, window, out) for n in range(pairs))
    )
    rate = pairs * messages / (time.perf_counter() - start)
    print(
        f"{pairs} pair(s) × {messages} messages, {window} in flight: {rate:.0f} msg/s, "
        f"errors {out.errors}"
    )
    print("  " + summary("send_message → ack", out.ack))
    print("  " + summary("send_message → message_received", out.push))
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    with broker_url() as url, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(amqp_url=url, base_dir=Path(tmp), env_overrides=dict(NO_RATE_LIMITS))
        try:
            for _ in range(args.replicas):
                stack.start_service("chat")
            gateway = stack.start_gateway()
            base = await measure(stack, gateway.ws, "base", 1, 200, 1)
            load = await measure(stack, gateway.ws, "load", args.pairs, args.messages, args.window)
            print(f"throughput under load / baseline: {load / base:.1f}x")
        finally:
            stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
