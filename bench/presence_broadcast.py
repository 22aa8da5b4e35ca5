"""Presence through the whole stack: connect + snapshot latency, and the time for one mentor
status change to reach the last of N connected students.

Baselines, measured in the same run: a `ping` round trip (gateway only) for the connect
latency, and the same broadcast while only 1 student is connected for the broadcast to N.

    python -m bench.presence_broadcast [--clients 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import websockets

from tests.support.stack import NO_RATE_LIMITS, Stack
from tools.rabbit import LocalRabbit


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def connect_and_snapshot(url: str) -> tuple[websockets.ClientConnection, float]:
    start = time.perf_counter()
    ws = await websockets.connect(url, max_size=None)
    while json.loads(await ws.recv())["event"] != "mentor_status_snapshot":
        pass
    return ws, time.perf_counter() - start


async def ping_rtt(ws: websockets.ClientConnection) -> float:
    start = time.perf_counter()
    await ws.send('{"event":"ping","ref":"p"}')
    while json.loads(await ws.recv())["event"] != "pong":
        pass
    return time.perf_counter() - start


async def broadcast(
    mentor: websockets.ClientConnection, students: list[websockets.ClientConnection], tag: str
) -> float:
    async def wait(ws: websockets.ClientConnection) -> float:
        while True:
            frame = json.loads(await ws.recv())
            if frame["event"] == "mentor_status_update" and frame["data"]["status_message"] == tag:
                return time.perf_counter()

    waiters = [asyncio.create_task(wait(ws)) for ws in students]
    start = time.perf_counter()
    await mentor.send(json.dumps({"event": "mentor_busy", "data": {"status_message": tag}}))
    ends = await asyncio.gather(*waiters)
    return max(ends) - start


async def run(stack: Stack, clients: int) -> None:
    gateway = stack.start_gateway()
    mentor, _ = await connect_and_snapshot(f"{gateway.ws}?token={stack.token('m1', 'mentor')}")
    students: list[websockets.ClientConnection] = []
    latencies: list[float] = []
    for i in range(clients):
        ws, latency = await connect_and_snapshot(f"{gateway.ws}?token={stack.token(f's{i}')}")
        students.append(ws)
        latencies.append(latency)
        if i == 0:  # baseline: the same broadcast while one student is connected
            pings = [await ping_rtt(ws) for _ in range(200)]
            one = [await broadcast(mentor, students, f"one-{n}") for n in range(20)]
    many = [await broadcast(mentor, students, f"all-{n}") for n in range(10)]
    print(f"clients: {clients}")
    print(
        f"connect + snapshot: p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms"
    )
    print(
        f"baseline ping rtt:  p50 {pct(pings, 0.5):.2f} ms  → connect/ping ratio "
        f"{statistics.median(latencies) / statistics.median(pings):.1f}x"
    )
    print(f"status → 1 student:       median {statistics.median(one) * 1000:.1f} ms")
    print(
        f"status → {clients} students: median {statistics.median(many) * 1000:.1f} ms "
        f"(ratio {statistics.median(many) / statistics.median(one):.1f}x)"
    )
    for ws in (mentor, *students):
        await ws.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    base = Path(tempfile.mkdtemp(prefix="im-bench-"))
    rabbit = LocalRabbit(base / "rabbit")
    rabbit.start()
    stack = Stack(
        amqp_url=rabbit.url,
        base_dir=base,
        env_overrides={
            "IM_LOG_LEVEL": "WARNING",
            "IM_GATEWAY_HEARTBEAT_S": "5",
            **NO_RATE_LIMITS,
        },
    )
    try:
        stack.start_service("presence", IM_LOG_LEVEL="INFO")
        asyncio.run(run(stack, args.clients))
    finally:
        stack.stop()
        rabbit.stop()


if __name__ == "__main__":
    main()
