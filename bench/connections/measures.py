"""The four measures, in the order a run takes them, on one set of connected students:

storm (+ memory before/after, idle) → status fan-out → reconnect after SIGKILL → after SIGTERM
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.connections.client import GIVE_UP_S, now
from bench.connections.fleet import Fleet
from bench.connections.stats import (
    Measure,
    fanout_measure,
    generator_lag,
    reconnect_measure,
    session_measure,
)
from bench.connections.system import Target
from bench.openloop.cpu import CpuMeter
from bench.openloop.gateway_client import Frame, GatewayClient, reply_of

LEAD_S = 1.0  # from telling the workers to the first scheduled connect
QUIET_CORES = 0.25  # settled: the stack's processes together use less than this
SETTLE_MAX_S = 30.0
SETTLE_S = 90.0  # beyond GIVE_UP_S: how long a phase may wait for the workers' answers
MENTOR = "m1"
REPLY_TIMEOUT_S = 15.0  # the mentor's acks, after the students had their time


@dataclass
class Phases:
    target: Target
    fleet: Fleet
    compression: bool
    measures: list[Measure] = field(default_factory=list)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)  # cost and context
    memory: dict[str, dict[str, int]] = field(default_factory=dict)
    connected: int = 0  # students up after the storm

    @asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """Wall time, CPU of every process (and of the generator), load average of a phase."""
        await self.fleet.ask("cpu")
        pids, cpu = self.target.processes(), self.target.cpu_seconds()
        loadgen, started = list(self.fleet.cpu_s), now()
        info: dict[str, Any] = {"load_1min_start": os.getloadavg()[0]}
        yield info
        wall = now() - started
        await self.fleet.ask("cpu")
        after_pids, after_cpu = self.target.processes(), self.target.cpu_seconds()
        info["wall_s"] = wall
        info["cpu_s"] = {}  # a restarted gateway: the new process's, since it started
        for label, seconds in after_cpu.items():
            same = after_pids[label] == pids.get(label) and label in cpu
            info["cpu_s"][label if same else f"{label} (new process)"] = (
                seconds - cpu[label] if same else seconds
            )
        busy = [(b - a) / wall for a, b in zip(loadgen, self.fleet.cpu_s, strict=True)]
        info["loadgen_cores_per_worker"] = busy
        info["load_1min_end"] = os.getloadavg()[0]
        self.phases[name] = info

    async def settle(self, before: str) -> None:
        """Let the stack work off the previous phase (e.g. presence's backlog) first."""
        meter = CpuMeter(self.target.processes())
        waited, quiet = await meter.wait_quiet(QUIET_CORES, SETTLE_MAX_S)
        self.phases.setdefault("settle_before", {})[before] = {"waited_s": waited, "quiet": quiet}

    async def read_memory(self, label: str) -> None:
        broker = await asyncio.to_thread(self.target.broker_memory_bytes)
        gateway = self.target.gateway_rss_bytes()
        sockets = self.target.gateway_sockets()
        broker_by_kind = {f"broker_{kind}": value for kind, value in broker.items()}
        self.memory[label] = {"gateway_rss": gateway, "gateway_sockets": sockets, **broker_by_kind}

    async def storm(self, ramp_s: float, idle_s: float) -> None:
        await self.read_memory("before")
        start_at = now() + LEAD_S
        async with self.phase("storm") as info:
            sessions = await self.fleet.ask_flat("storm", self.target.ws_url, start_at, ramp_s)
            done = [s["snapshot"] for s in sessions if s["snapshot"] is not None]
            info["until_last_snapshot_s"] = (max(done) - start_at) if done else None
            info["generator_lag_ms"] = asdict(generator_lag(sessions))
        for field_name in ("connected", "snapshot"):
            row = session_measure(f"connect storm → {field_name}", sessions, field_name)
            row.extra["from"] = "each client's scheduled start in the ramp"
            self.measures.append(row)
        self.measures[-1].extra["total_ms"] = (info["until_last_snapshot_s"] or 0) * 1000
        self.connected = sum(1 for s in sessions if s["snapshot"] is not None)
        per = max(1, self.connected)  # what each student that made it cost, all in
        info["cpu_ms_per_connected"] = {k: v * 1000 / per for k, v in info["cpu_s"].items()}
        await asyncio.sleep(idle_s)
        await self.read_memory("after_storm_idle")
        self.memory["connected"] = {"students": self.connected}

    async def fanout(self, changes: int, spacing_s: float, timeout_s: float) -> None:
        url = self.target.ws_url
        token = self.target.system.token(MENTOR, "mentor")
        await self.settle("fanout")
        mentor = await GatewayClient.connect(url, token, MENTOR, self.compression)
        try:
            await asyncio.sleep(spacing_s)  # the mentor's own "online" broadcast goes first
            answered_at: dict[str, float] = {}  # ref → when the mentor's reply arrived
            mentor.on_message = lambda frame, at: _note_reply(answered_at, frame, at)
            async with self.phase("fanout"):
                sent_at, answers = await send_changes(mentor, changes, spacing_s)
                until = now() + timeout_s
                replies = await self.fleet.ask("updates", list(sent_at), until)
            outcomes = await mentor_outcomes(answers)
        finally:
            await mentor.close()
        arrivals = {tag: [at for reply in replies for at in reply[tag]] for tag in sent_at}
        row, per_change = fanout_measure(f"status fan-out (median of {changes})", sent_at, arrivals)
        for change in per_change:
            change["mentor_reply"] = outcomes[change["tag"]]
            answered = answered_at.get(change["tag"])
            change["mentor_reply_ms"] = (
                None if answered is None else ((answered - sent_at[change["tag"]]) * 1000)
            )
        refused = [o for o in outcomes.values() if o != "ack"]
        for outcome in refused:
            key = f"status change answered {outcome}"
            row.failures[key] = row.failures.get(key, 0) + 1
        row.extra["changes"] = per_change
        row.extra["spacing_s"] = spacing_s
        self.measures.append(row)

    async def reconnect(self, hard: bool) -> None:
        name = "reconnect after SIGKILL" if hard else "reconnect after SIGTERM"
        await self.settle(name)
        async with self.phase(name) as info:
            restart = await self.target.restart_gateway(hard)
            info["restart"] = asdict(restart)
            until = now() + GIVE_UP_S + SETTLE_S
            records = await self.fleet.ask_flat("reconnected", restart.signalled, until)
        for row in reconnect_measure(name, restart.signalled, records):
            row.extra["from"] = "the signal to the gateway"
            row.extra["new_gateway_ready_ms"] = (
                None if restart.ready is None else (restart.ready - restart.signalled) * 1000
            )
            self.measures.append(row)
        await self.read_memory(f"after_{'kill' if hard else 'term'}_reconnect")


def _note_reply(answered_at: dict[str, float], frame: Frame, at: float) -> None:
    reply = reply_of(frame)
    if reply is not None and reply[0] is not None:
        answered_at.setdefault(reply[0], at)


async def send_changes(
    mentor: GatewayClient, changes: int, spacing_s: float
) -> tuple[dict[str, float], dict[str, asyncio.Future[Frame]]]:
    """``mentor_busy`` with a unique ``status_message`` every ``spacing_s``, not waiting for
    the replies; returns when each was sent, and the future of each reply (ack or error)."""
    run = uuid.uuid4().hex[:6]
    sent_at: dict[str, float] = {}
    answers: dict[str, asyncio.Future[Frame]] = {}
    first = now()
    for k in range(changes):
        await asyncio.sleep(max(0.0, first + k * spacing_s - now()))
        tag = f"fanout-{run}-{k}"
        answers[tag] = mentor.expect(replying_to(tag))
        sent_at[tag] = now()
        await mentor.send("mentor_busy", {"status_message": tag}, ref=tag)
    return sent_at, answers


def replying_to(ref: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.get("ref") == ref and reply_of(frame) is not None


async def mentor_outcomes(answers: dict[str, asyncio.Future[Frame]]) -> dict[str, str]:
    """'ack', or the error code (with retry_after_ms), or 'no reply', per change."""
    await asyncio.wait(answers.values(), timeout=REPLY_TIMEOUT_S)
    out = {}
    for tag, future in answers.items():
        if not future.done():
            future.cancel()  # no reply: nobody will look at it again
        ok = not future.cancelled() and future.exception() is None
        reply = reply_of(future.result()) if ok else None
        if reply is None:
            out[tag] = "no reply"
        else:
            _, code, retry_after_ms = reply
            retry = f" (retry_after_ms {retry_after_ms:g})" if retry_after_ms is not None else ""
            out[tag] = "ack" if code is None else f"{code}{retry}"
    return out
