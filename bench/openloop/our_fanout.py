"""Fanout against our stack: one mentor changes status, every connected student is told.

Changes alternate ``mentor_available`` / ``mentor_busy``, each with ``status_message`` =
``<step tag>.<seq>``, so every change is visible (status or message differ) and a student's
``mentor_status_update`` names the change it carries. Delivery is "latest delivered"
(see ``FanoutLog``), since the server may coalesce one mentor's changes (PROTOCOL §5).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from bench.openloop.gateway_client import Frame, GatewayClient
from bench.openloop.our_workloads import command_sender, record_replies
from bench.openloop.recorder import FanoutLog
from bench.openloop.scenario import Fanout, gather_bounded, key_of, seq_of, until_all_arrived
from bench.openloop.schedule import Sender
from bench.openloop.systems import OurSystem

SETTLE_S = 120.0  # for every student to have been through presence's catch-up


def status_change(key: str, seq: int) -> tuple[str, dict[str, Any]]:
    event = "mentor_available" if seq % 2 == 0 else "mentor_busy"
    return event, {"status_message": key}


class OurFanout(Fanout[GatewayClient, OurSystem]):
    system = "ours"

    async def _client(self, user_id: str, role: str) -> GatewayClient:
        token = self.target.token(user_id, role)
        return await GatewayClient.connect(self.target.ws_url, token, user_id, self.deflate)

    async def _student(self, user_id: str) -> tuple[GatewayClient, asyncio.Future[Frame]]:
        client = await self._client(user_id, "student")
        # registered before the reader first runs, so the snapshot cannot slip past it
        return client, client.expect(lambda f: f.get("event") == "mentor_status_snapshot")

    async def connect(self, run_tag: str) -> None:
        self.mentor = await self._client(f"{run_tag}m", "mentor")
        opened = await gather_bounded(
            partial(self._student, f"{run_tag}st{i}") for i in range(self.student_count)
        )
        self.students = [client for client, _ in opened]
        # Measure fan-out, not the connect storm (bench of its own): every student has been
        # through presence's catch-up before the first change is sent.
        await asyncio.wait_for(asyncio.gather(*(snapshot for _, snapshot in opened)), SETTLE_S)

    def _change_of(self, frame: Frame, tag: str) -> int | None:
        if frame.get("event") != "mentor_status_update" or self.mentor is None:
            return None
        data = frame.get("data") or {}
        if data.get("mentor_id") != self.mentor.user_id:
            return None
        return seq_of(data.get("status_message"), tag)

    async def warm_up(self, tag: str) -> None:
        mentor = self.mentor
        assert mentor is not None
        arrived = [s.expect(lambda f: self._change_of(f, tag) is not None) for s in self.students]

        async def send(attempt: int) -> None:
            await mentor.request(*status_change(key_of(tag, attempt), attempt))

        await until_all_arrived(arrived, send, "mentor status")

    def listen(self, tag: str, log: FanoutLog) -> Sender:
        assert self.mentor is not None
        for index, student in enumerate(self.students):
            student.on_message = partial(self._on_student_frame, index, tag, log)
            student.on_close = lambda reason: log.on_connection_lost("student", reason)
        record_replies(self.mentor, tag, log)
        return command_sender(self.mentor, tag, log, status_change)

    def _on_student_frame(
        self, index: int, tag: str, log: FanoutLog, frame: Frame, at: float
    ) -> None:
        change = self._change_of(frame, tag)
        if change is not None:
            log.on_push(index, change, at)
