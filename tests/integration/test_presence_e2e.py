"""Presence end to end: real broker, real gateway and presence processes, real WebSockets."""

from __future__ import annotations

from tests.support.client import WsClient
from tests.support.stack import Stack


async def test_connect_snapshot_and_live_status(stack: Stack) -> None:
    stack.start_service("presence")
    gateway = stack.start_gateway()
    mentor = await WsClient.connect(gateway.ws, stack.token("m1", "mentor", "Maya"))
    connected = await mentor.event("connected")
    assert connected == mentor.frames[0], "connected must be the first frame"
    assert connected["data"]["user_id"] == "m1"
    assert connected["data"]["role"] == "mentor"
    assert connected["data"]["protocol_version"] == 1
    # The mentor's own snapshot follows the broadcast of their coming online: from here on,
    # every gateway's cached snapshot (or presence's) has them.
    await mentor.event("mentor_status_snapshot")
    student = await WsClient.connect(gateway.ws, stack.token("s1", "student", "Sam"))
    snapshot = await student.event("mentor_status_snapshot")
    assert [m["mentor_id"] for m in snapshot["data"]["mentors"]] == ["m1"]
    assert snapshot["data"]["mentors"][0]["online"] is True
    assert snapshot["data"]["mentors"][0]["status"] == "available"

    ack = await mentor.ack("mentor_busy", {"status": "break", "status_message": "lunch"})
    assert ack["status"] == "break" and ack["status_message"] == "lunch"
    update = await student.event("mentor_status_update", mentor_id="m1", status="break")
    assert update["data"]["status_message"] == "lunch"
    await mentor.event("mentor_status_update", mentor_id="m1", status="break")
    await student.close()
    await mentor.close()


async def test_appear_offline_looks_disconnected_to_everyone_else(stack: Stack) -> None:
    stack.start_service("presence")
    gateway = stack.start_gateway()
    mentor = await WsClient.connect(gateway.ws, stack.token("m1", "mentor", "Maya"))
    await mentor.event("mentor_status_snapshot")
    student = await WsClient.connect(gateway.ws, stack.token("s1", "student", "Sam"))
    await student.event("mentor_status_snapshot")

    ack = await mentor.ack("mentor_busy", {"status": "offline"})
    assert (ack["status"], ack["online"]) == ("offline", True)
    seen = await student.event("mentor_status_update", mentor_id="m1", status="offline")
    assert seen["data"]["online"] is False
    await mentor.event("mentor_status_update", mentor_id="m1", status="offline", online=True)
    last_own = [f for f in mentor.frames if f.get("event") == "mentor_status_update"][-1]
    assert last_own["data"]["online"] is True, "the mentor's own last word is the truth"
    listed = {m["mentor_id"]: m for m in (await student.ack("get_mentors"))["mentors"]}
    assert (listed["m1"]["status"], listed["m1"]["online"]) == ("offline", False)
    mine = {m["mentor_id"]: m for m in (await mentor.ack("get_mentors"))["mentors"]}
    assert mine["m1"]["online"] is True
    late = await WsClient.connect(gateway.ws, stack.token("s2", "student", "Sue"))
    snapshot = await late.event("mentor_status_snapshot")
    assert snapshot["data"]["mentors"][0]["online"] is False
    for client in (mentor, student, late):
        await client.close()


async def test_a_flapping_mentor_costs_others_a_few_updates_ending_with_the_latest(
    stack: Stack,
) -> None:
    stack.start_service("presence")
    gateway = stack.start_gateway(IM_RATE_LIMIT_BURST="200", IM_USER_RATE_LIMIT_BURST="200")
    mentor = await WsClient.connect(gateway.ws, stack.token("m1", "mentor", "Maya"))
    await mentor.event("mentor_status_snapshot")
    student = await WsClient.connect(gateway.ws, stack.token("s1", "student", "Sam"))
    await student.event("mentor_status_snapshot")
    flips = 60
    for i in range(flips):  # as fast as the socket takes them
        if i % 2:
            await mentor.send("mentor_busy", {"status_message": f"f{i}"}, f"f{i}")
        else:
            await mentor.send("mentor_available", {"status_message": f"f{i}"}, f"f{i}")
    await mentor.wait_for(lambda f: f.get("ref") == f"f{flips - 1}", timeout=20, what="the acks")
    last = f"f{flips - 1}"
    await student.event("mentor_status_update", mentor_id="m1", status_message=last, timeout=5)
    updates = [f for f in student.frames if f.get("event") == "mentor_status_update"]
    assert updates[-1]["data"]["status_message"] == last, "the latest state arrives, last"
    assert len(updates) < flips / 3, f"{len(updates)} updates for {flips} changes"
    await student.close()
    await mentor.close()
