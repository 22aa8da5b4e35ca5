"""Several gateway processes on one port (IM_GATEWAY_REUSE_PORT): the kernel spreads the
sockets over them, and they serve as one (a status change reaches students on each)."""

from __future__ import annotations

import psutil

from tests.support.client import WsClient
from tests.support.stack import Stack, wait_until

STUDENTS = 24


def _sockets_held(pid: int, port: int) -> int:
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
    )


async def test_gateways_sharing_a_port_split_the_sockets_and_each_pushes_to_its_own(
    stack: Stack,
) -> None:
    stack.start_service("presence")
    first = stack.start_gateway(IM_GATEWAY_REUSE_PORT="true")
    second = stack.start_gateway(port=first.port, IM_GATEWAY_REUSE_PORT="true")
    assert second.port == first.port and second.process.alive()

    mentor = await WsClient.connect(first.ws, stack.token("m1", "mentor", "Maya"))
    await mentor.event("mentor_status_snapshot")
    students = []
    for n in range(STUDENTS):
        student = await WsClient.connect(first.ws, stack.token(f"s{n}", "student", f"S{n}"))
        await student.until_mentor("m1", online=True)
        students.append(student)
    held = [_sockets_held(gateway.process.popen.pid, first.port) for gateway in (first, second)]
    assert sum(held) == STUDENTS + 1, held
    assert all(count > 0 for count in held), f"the kernel gave every socket to one: {held}"

    await mentor.ack("mentor_busy", {"status_message": "in a session"})
    for student in students:
        await student.event("mentor_status_update", mentor_id="m1", status_message="in a session")

    # one process going away leaves the other serving its own sockets and new ones
    second.process.kill()
    wait_until(lambda: not second.process.alive(), 10, "the second gateway to exit")
    late = await WsClient.connect(first.ws, stack.token("late", "student", "Late"))
    await late.event("mentor_status_snapshot")
    for client in (mentor, late, *students):
        await client.close()
