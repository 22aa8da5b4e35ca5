"""Help broadcast fan-out through the whole stack: ``student_request_help`` sent by a student →
``help_request_received`` at the *last* of N available mentors, over real WebSockets.

Also reported: the student's ack (``delivered_to`` is checked to be N). Requests run one after
another, each cancelled before the next, so the figures are latencies, not throughput. The
mentors' sockets live in this process: on a 2-core machine its own reading of N sockets is
part of the figure.

    .venv/bin/python -m bench.help_fanout [--mentors 1,50] [--runs 30]

Uses the broker at IM_AMQP_URL when it answers, otherwise starts a private RabbitMQ node;
starts its own gateway, presence and help processes in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from pathlib import Path

from bench.common import broker_url, summary
from tests.support.client import WsClient
from tests.support.stack import NO_RATE_LIMITS, Stack

_refs = itertools.count(1)


async def connect(stack: Stack, ws: str, user_id: str, role: str) -> WsClient:
    client = await WsClient.connect(ws, stack.token(user_id, role, user_id))
    await client.event("connected")
    return client


async def add_mentors(
    stack: Stack, ws: str, watcher: WsClient, mentors: list[WsClient], total: int
) -> None:
    """Connect mentors up to ``total``; return once presence has announced each online."""
    while len(mentors) < total:
        user_id = f"m{len(mentors)}"
        mentors.append(await connect(stack, ws, user_id, "mentor"))
        await watcher.event("mentor_status_update", mentor_id=user_id, online=True, timeout=30)


async def one_request(student: WsClient, mentors: list[WsClient]) -> tuple[float, float, int]:
    """Returns (ack latency, latency to the last mentor, delivered_to)."""
    loop = asyncio.get_running_loop()
    ref = f"fanout-{next(_refs)}"
    start = loop.time()
    await student.send(
        "student_request_help",
        {"subject": "Math", "message": f"bench {ref}", "urgency": "high"},
        ref,
    )
    ack = await student.wait_for(lambda f: f.get("ref") == ref, what="ack")
    acked = loop.time() - start
    assert ack["event"] == "ack", ack
    request_id = ack["data"]["request_id"]
    await asyncio.gather(
        *(m.event("help_request_received", request_id=request_id, timeout=30) for m in mentors)
    )
    last = loop.time() - start
    await student.ack("cancel_help_request", {"request_id": request_id})
    return acked, last, int(ack["data"]["delivered_to"])


async def bench(amqp_url: str, base: Path, sizes: list[int], runs: int) -> None:
    stack = Stack(amqp_url=amqp_url, base_dir=base, env_overrides=dict(NO_RATE_LIMITS))
    try:
        stack.start_service("presence")
        stack.start_service("help")
        # The student sends two events per run: lift the per-connection rate limit.
        gateway = stack.start_gateway()
        watcher = await connect(stack, gateway.ws, "watcher", "student")
        student = await connect(stack, gateway.ws, "s1", "student")
        mentors: list[WsClient] = []
        for size in sizes:
            await add_mentors(stack, gateway.ws, watcher, mentors, size)
            # Warm-up until help's own view (fed by presence's facts, a moment after the
            # watcher saw them) counts all N mentors as available.
            for attempt in range(20):
                _, _, delivered = await one_request(student, mentors)
                if delivered == size and attempt >= 2:
                    break
            assert delivered == size, f"delivered_to {delivered}, expected {size}"
            acks, lasts = [], []
            for _ in range(runs):
                acked, last, delivered = await one_request(student, mentors)
                assert delivered == size
                acks.append(acked)
                lasts.append(last)
            print(summary(f"N={size:<3} student_request_help → ack", acks))
            print(summary(f"N={size:<3} → last mentor's help_request_received", lasts))
        for client in (watcher, student, *mentors):
            await client.close()
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mentors", default="1,50", help="comma-separated mentor counts")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.mentors.split(","))
    started = time.monotonic()
    with broker_url() as url, tempfile.TemporaryDirectory(prefix="im-bench-") as tmp:
        asyncio.run(bench(url, Path(tmp), sizes, args.runs))
    print(f"(total {time.monotonic() - started:.1f}s, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
