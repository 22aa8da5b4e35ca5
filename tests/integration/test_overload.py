"""Overload on a real broker (issue: graceful under overload).

A stalled service (SIGSTOP: the same as one that has fallen far behind) must not make clients
wait: once its oldest command waits longer than ``IM_SHED_AFTER_MS``, new commands are refused
at once with ``unavailable`` + ``retry_after_ms``; commands that waited past their deadline are
answered ``unavailable`` and are never executed later; and once the service is back, latency
is back to idle within seconds. A full service queue refuses at once too.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from services.chat.domain import conversation_id_for
from tests.support.client import Frame, WsClient
from tests.support.stack import NO_RATE_LIMITS, Process, Stack
from tests.support.users import connect

UNLIMITED = NO_RATE_LIMITS


@contextmanager
def stalled(process: Process) -> Iterator[None]:
    os.kill(process.popen.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.popen.pid, signal.SIGCONT)


async def send(client: WsClient, ref: str, text: str) -> None:
    await client.send("send_message", {"recipient_id": "bob", "text": text}, ref)


def refusal(frame: Frame) -> bool:
    return frame.get("event") == "error" and "retry_after_ms" in frame.get("data", {})


async def test_a_stalled_service_is_refused_fast_and_late_commands_never_run(
    stack: Stack,
) -> None:
    chat = stack.start_service("chat")
    gateway = stack.start_gateway(UNLIMITED, IM_SHED_AFTER_MS="300", IM_REQUEST_TIMEOUT_S="3")
    alice, bob = await connect(stack, gateway, "alice"), await connect(stack, gateway, "bob")
    await alice.ack("send_message", {"recipient_id": "bob", "text": "before"})

    with stalled(chat):
        for i in range(5):  # these reach the queue and wait there
            await send(alice, f"queued{i}", f"queued {i}")
        deadline, probes = time.monotonic() + 5, 0
        while not any(refusal(f) for f in alice.frames):  # until the gateway sheds
            assert time.monotonic() < deadline, "the gateway never started refusing"
            probes += 1
            await send(alice, f"probe{probes}", "probe")
            try:
                await alice.wait_for(refusal, timeout=0.05, what="a refusal")
            except AssertionError:
                pass
        started = time.monotonic()
        reply = await alice.request("send_message", {"recipient_id": "bob", "text": "probe"})
        took = time.monotonic() - started
        assert reply["event"] == "error" and reply["data"]["code"] == "unavailable", reply
        assert reply["data"]["retry_after_ms"] == 300
        assert took < 0.1, f"a refusal took {took * 1000:.0f} ms"
        for i in range(5):  # the queued ones time out: outcome unknown, no retry_after_ms

            def answers(f: Frame, r: str = f"queued{i}") -> bool:
                return f.get("ref") == r

            timed_out = await alice.wait_for(answers, timeout=10, what="a timeout")
            assert timed_out["event"] == "error", timed_out
            assert timed_out["data"]["code"] == "unavailable"
            assert "retry_after_ms" not in timed_out["data"]

    recovered = time.monotonic()  # back: idle latency again within 2 s
    while True:
        reply = await alice.request("send_message", {"recipient_id": "bob", "text": "after"})
        if reply["event"] == "ack":
            break
        assert time.monotonic() - recovered < 2, f"not recovered: {reply}"
    conversation_id = conversation_id_for("alice", "bob")
    history = await bob.ack("get_history", {"conversation_id": conversation_id})
    texts = [m["text"] for m in history["messages"]]
    assert texts == ["before", "after"], "a command its sender gave up on was executed"
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        metrics = (await http.get("/metrics")).text
    assert 'im_gateway_shed_total{kind="durable",service="chat"}' in metrics
    assert 'im_gateway_timeouts_total{service="chat"}' in metrics
    assert "past their deadline" in chat.log()
    assert "a service is behind" in gateway.process.log()
    for client in (alice, bob):
        await client.close()


async def test_a_full_service_queue_refuses_at_once(stack: Stack) -> None:
    # A message carries one command or a batch; one connection has at most MAX_UNCONFIRMED
    # (16) commands in flight, so 800 of them take at least 50 messages: more than the 10 the
    # queue holds plus the 10 the stalled consumer may have been handed (its prefetch).
    chat = stack.start_service("chat", IM_QUEUE_MAX_LENGTH="10", IM_PREFETCH="10")
    gateway = stack.start_gateway(
        UNLIMITED, IM_QUEUE_MAX_LENGTH="10", IM_SHED_AFTER_MS="60000", IM_REQUEST_TIMEOUT_S="30"
    )
    alice = await connect(stack, gateway, "alice")
    count = 800
    with stalled(chat):
        for i in range(count):
            await send(alice, f"m{i}", f"m {i}")
        full = await alice.wait_for(refusal, timeout=10, what="a queue-full refusal")
        assert full["data"]["code"] == "unavailable"
        assert int(full["ref"][1:]) >= 10, "refused before the queue was full"
    await alice.wait_for(
        lambda f: sum(g.get("event") in ("ack", "error") for g in alice.frames) == count,
        timeout=30,
        what="a reply to every command",
    )
    refused = [f for f in alice.frames if refusal(f)]
    acks = [f for f in alice.frames if f.get("event") == "ack"]
    assert len(acks) + len(refused) == count and len(acks) >= 10
    assert {f["data"]["retry_after_ms"] for f in refused} == {1000}
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        metrics = (await http.get("/metrics")).text
    assert 'im_gateway_queue_full_total{service="chat"}' in metrics
    await alice.close()
