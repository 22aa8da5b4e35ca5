"""Call set-up latency through the whole stack: ``initiate_call`` sent by the caller →
``call_initiated`` received by the receiver, over real WebSockets.

Also reported: the caller's ack, and ``accept_call`` → ``call_accepted`` at the caller.
Calls run one after another (each call ends before the next starts), so the figures are
latencies, not throughput.

    .venv/bin/python -m bench.calls_setup [--calls 200] [--pairs 1]

Uses the broker at IM_AMQP_URL when it answers, otherwise starts a private RabbitMQ node;
starts its own gateway, presence and calls processes in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.common import broker_url, summary
from tests.support.client import WsClient
from tests.support.stack import NO_RATE_LIMITS, Stack


async def one_pair(stack: Stack, ws: str, pair: int, calls: int) -> dict[str, list[float]]:
    caller_id, receiver_id = f"caller{pair}", f"mentor{pair}"
    caller = await WsClient.connect(ws, stack.token(caller_id, "student", "Caller"))
    receiver = await WsClient.connect(ws, stack.token(receiver_id, "mentor", "Mentor"))
    for client in (caller, receiver):
        await client.event("connected")
    results: dict[str, list[float]] = {"setup": [], "ack": [], "accept": []}
    for number in range(calls + 5):
        started = time.perf_counter()
        ack_task = asyncio.create_task(
            caller.ack("initiate_call", {"receiver_id": receiver_id, "call_type": "audio"})
        )
        ringing = await receiver.event("call_initiated", caller_id=caller_id)
        rang = time.perf_counter()
        ack = await ack_task
        acked = time.perf_counter()
        call_id = ack["call_id"]
        assert ringing["data"]["call_id"] == call_id
        accept_started = time.perf_counter()
        await receiver.send("accept_call", {"call_id": call_id})
        await caller.event("call_accepted", call_id=call_id)
        accepted = time.perf_counter()
        await caller.ack("end_call", {"call_id": call_id})
        await receiver.event("call_ended", call_id=call_id)
        receiver.frames.clear()  # so the next wait does not find this call's frames
        caller.frames.clear()
        if number >= 5:  # warm-up calls are not counted
            results["setup"].append(rang - started)
            results["ack"].append(acked - started)
            results["accept"].append(accepted - accept_started)
    await caller.close()
    await receiver.close()
    return results


async def measure(stack: Stack, calls: int, pairs: int) -> None:
    gateway = stack.gateways[0]
    per_pair = await asyncio.gather(
        *(one_pair(stack, gateway.ws, pair, calls // pairs) for pair in range(pairs))
    )
    merged: dict[str, list[float]] = {"setup": [], "ack": [], "accept": []}
    for result in per_pair:
        for key, samples in result.items():
            merged[key] += samples
    print(summary("initiate → call_initiated (callee)", merged["setup"]))
    print(summary("initiate → ack (caller)", merged["ack"]))
    print(summary("accept → call_accepted (caller)", merged["accept"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=1, help="caller/receiver pairs at once")
    args = parser.parse_args()
    with broker_url() as url, tempfile.TemporaryDirectory(prefix="calls-bench-") as folder:
        stack = Stack(amqp_url=url, base_dir=Path(folder), env_overrides=dict(NO_RATE_LIMITS))
        try:
            stack.start_service("presence")
            stack.start_service("calls")
            # Calls follow each other faster than a person would: lift the per-connection limit.
            stack.start_gateway()
            asyncio.run(measure(stack, args.calls, args.pairs))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
