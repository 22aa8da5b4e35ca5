"""Presence across processes: several gateways and replicas, restarts, crashes, the grace."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import httpx

from shared.protocol.domain import CALL_ACCEPTED, CALL_ENDED
from tests.support.broker import Broker
from tests.support.client import WsClient, bearer
from tests.support.postgres import Databases
from tests.support.stack import Stack, wait_until


async def _connect(url: str, stack: Stack, user: str, role: str) -> WsClient:
    client = await WsClient.connect(url, stack.token(user, role, user.upper()))
    await client.event("mentor_status_snapshot")
    return client


async def _until_mentor(client: WsClient, mentor_id: str, **fields: object) -> None:
    """Poll get_mentors until ``mentor_id`` shows ``fields`` (order-independent)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        mentors = {m["mentor_id"]: m for m in (await client.ack("get_mentors"))["mentors"]}
        mentor = mentors.get(mentor_id, {})
        if all(mentor.get(k) == v for k, v in fields.items()):
            return
        assert asyncio.get_running_loop().time() < deadline, f"{mentor_id} never had {fields}"
        await client.request("ping", {})


async def test_two_gateways_two_replicas(stack: Stack, databases: Databases) -> None:
    stack.start_service("presence")
    stack.start_service("presence")
    gw1, gw2 = stack.start_gateway(), stack.start_gateway()
    mentor = await _connect(gw1.ws, stack, "m1", "mentor")
    students = [await _connect(gw.ws, stack, f"s{i}", "student") for i, gw in enumerate((gw1, gw2))]
    for status in ("busy", "break", "busy", "offline"):
        await mentor.ack("mentor_busy", {"status": status, "status_message": f"now {status}"})
        for student in students:
            await student.event(
                "mentor_status_update", mentor_id="m1", status_message=f"now {status}"
            )
    await mentor.ack("mentor_available", {"status_message": "ask me"})
    for student in students:
        update = await student.event(
            "mentor_status_update", status="available", status_message="ask me"
        )
        assert update["data"]["online"] is True
    # the same user on both gateways gets every push on both connections
    second = await _connect(gw2.ws, stack, "m1", "mentor")
    await mentor.ack("mentor_busy", {"status_message": "two devices"})
    await second.event("mentor_status_update", status_message="two devices")
    await mentor.event("mentor_status_update", status_message="two devices")
    for client in (mentor, second, *students):
        await client.close()


async def test_quick_reconnect_has_no_flicker_and_status_is_remembered(stack: Stack) -> None:
    stack.start_service("presence", IM_RECONNECT_GRACE_S="2")
    gateway = stack.start_gateway()
    student = await _connect(gateway.ws, stack, "s1", "student")
    mentor = await _connect(gateway.ws, stack, "m1", "mentor")
    await mentor.ack("mentor_busy", {"status": "break", "status_message": "coffee"})
    await student.event("mentor_status_update", status="break")
    await mentor.close()
    mentor = await _connect(gateway.ws, stack, "m1", "mentor")  # within the grace
    await mentor.close()
    offline = await student.event("mentor_status_update", status="offline", timeout=15)
    assert offline["data"]["online"] is False
    assert student.count("mentor_status_update", online=False) == 1, "one offline, no flicker"
    assert student.count("mentor_status_update", status="break") == 1
    mentor = await _connect(gateway.ws, stack, "m1", "mentor")
    back = await student.event("mentor_status_update", status="break", online=True)
    assert back["data"]["status_message"] == "coffee", "the chosen status is remembered"
    await mentor.close()
    await student.close()


async def test_presence_restart_loses_nothing(stack: Stack) -> None:
    presence = stack.start_service("presence")
    gateway = stack.start_gateway()
    mentor = await _connect(gateway.ws, stack, "m1", "mentor")
    await mentor.ack("mentor_busy", {"status": "busy", "status_message": "grading"})
    presence.kill()
    # while presence is down: a student connects and a second mentor connects
    student = await WsClient.connect(gateway.ws, stack.token("s1", "student"))
    mentor2 = await WsClient.connect(gateway.ws, stack.token("m2", "mentor"))
    stack.start_service("presence")
    # The snapshot (the gateway's, or presence's) and the updates after it: nothing chosen
    # before the crash and nothing that happened during it is missing.
    await student.event("mentor_status_snapshot", timeout=20)
    await student.until_mentor("m1", timeout=20, status="busy", status_message="grading")
    await student.until_mentor("m2", timeout=20, online=True)
    mentors = (await student.ack("get_mentors"))["mentors"]
    assert {m["mentor_id"]: m["online"] for m in mentors} == {"m1": True, "m2": True}
    await mentor.ack("mentor_available", {})
    await student.event("mentor_status_update", mentor_id="m1", status="available")
    for client in (mentor, mentor2, student):
        await client.close()


async def test_killed_gateway_takes_its_mentors_offline(stack: Stack) -> None:
    stack.start_service("presence")
    doomed, survivor = stack.start_gateway(), stack.start_gateway()
    await _connect(doomed.ws, stack, "m1", "mentor")
    student = await _connect(survivor.ws, stack, "s1", "student")
    await _until_mentor(student, "m1", online=True)
    doomed.process.kill()
    offline = await student.event("mentor_status_update", mentor_id="m1", online=False, timeout=20)
    assert offline["data"]["status"] == "offline"
    async with httpx.AsyncClient(base_url=survivor.http) as http:
        listed = (await http.get("/api/mentors", headers=bearer(stack.token("s1")))).json()
    assert listed["mentors"][0]["online"] is False
    await student.close()


async def _publish_fact(broker: Broker, stack: Stack, name: str, data: dict[str, str]) -> None:
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{stack.namespace}.domain")
        body = json.dumps({"event": name, "data": data}).encode()
        await exchange.publish(aio_pika.Message(body), routing_key=name)


async def test_mentor_in_session_during_a_call(stack: Stack, broker: Broker) -> None:
    stack.start_service("presence")
    gateway = stack.start_gateway()
    student = await _connect(gateway.ws, stack, "s1", "student")
    mentor = await _connect(gateway.ws, stack, "m1", "mentor")
    await mentor.ack("mentor_busy", {"status": "busy", "status_message": "office hours"})
    await student.event("mentor_status_update", status="busy")
    call = {"call_id": "c1", "caller_id": "s1", "receiver_id": "m1"}
    await _publish_fact(broker, stack, CALL_ACCEPTED, call)
    in_session = await student.event("mentor_status_update", mentor_id="m1", status="in_session")
    await _publish_fact(broker, stack, CALL_ENDED, call)
    restored = await student.event(
        "mentor_status_update", after=in_session, mentor_id="m1", status="busy"
    )
    assert restored["data"]["status_message"] == "office hours"
    assert student.count("mentor_status_update", status="busy") == 2
    await mentor.close()
    await student.close()


async def test_broker_restart_recovers_without_restarting_processes(
    own_broker: Broker, tmp_path: Path
) -> None:
    stack = Stack(amqp_url=own_broker.url, base_dir=tmp_path / "stack")
    stack.base_dir.mkdir()
    try:
        stack.start_service("presence")
        gateway = stack.start_gateway()
        student = await _connect(gateway.ws, stack, "s1", "student")
        mentor = await _connect(gateway.ws, stack, "m1", "mentor")

        def ready() -> bool:
            try:
                return httpx.get(f"{gateway.http}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        await asyncio.to_thread(own_broker.stop)
        await asyncio.to_thread(wait_until, lambda: not ready(), 10, "readyz to say 503")
        # while the broker is away a request is answered at once, it does not hang
        started = asyncio.get_running_loop().time()
        assert await mentor.error("mentor_busy", {"status_message": "no broker"}) == "unavailable"
        assert asyncio.get_running_loop().time() - started < 2
        assert (await mentor.request("ping"))["event"] == "pong", "the socket itself is fine"
        refused = await WsClient.connect(gateway.ws, stack.token("s3", "student"))
        await asyncio.wait_for(refused.connection.wait_closed(), 5)
        assert refused.connection.close_code == 1013, "new sockets: try again later"
        await asyncio.to_thread(own_broker.start)
        await asyncio.to_thread(wait_until, ready, 60, "gateway ready again")
        # the existing sockets survived; bindings and consumers were restored
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            reply = await mentor.request("mentor_busy", {"status_message": "after restart"})
            if reply["event"] == "ack":
                break
            assert reply["data"]["code"] == "unavailable"
            assert asyncio.get_running_loop().time() < deadline, "presence never came back"
        await student.event("mentor_status_update", status_message="after restart", timeout=15)
        newcomer = await _connect(gateway.ws, stack, "s2", "student")
        await newcomer.close()
        await student.close()
        await mentor.close()
    except BaseException:
        stack.stop()
        stack.print_logs()
        raise
    finally:
        stack.stop()
