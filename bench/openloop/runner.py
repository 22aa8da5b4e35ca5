"""One step: a workload at one offered rate, with its CPU cost per process.

    connect and warm up → settle → sample CPU → send on schedule → drain → sample CPU

The CPU window covers sending and draining (the backlog a step leaves is that step's cost);
before sending, the runner waits until the system has worked off everything before.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.openloop.cpu import CpuMeter, SelfMeter
from bench.openloop.recorder import Delivery
from bench.openloop.scenario import Scenario
from bench.openloop.schedule import now, run_open_loop, send_times, wait_for

QUIET_CORES = 0.25  # "idle": all watched processes together below a quarter of a core
SETTLE_MAX_S = 60.0
START_DELAY_S = 0.05  # from installing the handlers to the first scheduled send


@dataclass(frozen=True)
class StepResult:
    system: str
    workload: str
    rate: float  # offered: messages (status changes for fanout) per second
    duration_s: float
    settle_s: float  # waited for the system to go quiet before the step
    started_quiet: bool  # False: the previous step's backlog was still being worked off
    drain_s: float  # waited after the last send for replies and deliveries
    drained: bool  # everything delivered or refused before the drain period ended
    delivery: Delivery
    cpu_s: dict[str, float]  # per process (with its children): CPU seconds in the step
    loadgen_cpu_s: float  # this process, which drives the clients (not part of any total)

    @property
    def cpu_total_s(self) -> float:
        return sum(self.cpu_s.values())

    def cpu_ms_per_message(self) -> dict[str, float]:
        """CPU milliseconds per delivered message, per process and ``total``."""
        delivered = max(1, self.delivery.delivered)
        per = {label: s * 1000 / delivered for label, s in self.cpu_s.items()}
        per["total"] = self.cpu_total_s * 1000 / delivered
        return per


async def run_step(
    scenario: Scenario,
    tag: str,
    rate: float,
    duration_s: float,
    drain_s: float,
    meter: CpuMeter,
) -> StepResult:
    count = max(1, round(rate * duration_s))
    loadgen = SelfMeter()
    try:
        await scenario.prepare(tag)
        # connecting and warming up leave work behind (presence, catch-ups): not this step's
        settle_s, quiet = await meter.wait_quiet(QUIET_CORES, SETTLE_MAX_S)
        log, senders = scenario.start(tag, count)
        log.scheduled[:] = send_times(now() + START_DELAY_S, rate, count)
        cpu_before, loadgen_before = meter.sample(), loadgen.sample()
        await run_open_loop(senders, log.scheduled, log.on_sent)
        sent_at = now()
        drained = await wait_for(log.settled, sent_at + drain_s)
        waited = now() - sent_at
        cpu = CpuMeter.delta(cpu_before, meter.sample())
        loadgen_cpu = loadgen.sample() - loadgen_before
        # Summarise now: closing the step (end_call, close handshakes) takes time during
        # which late deliveries would still be recorded.
        delivery = log.summary(count / rate)
    finally:
        await scenario.close_step()
    return StepResult(
        system=scenario.system,
        workload=scenario.workload,
        rate=rate,
        duration_s=count / rate,
        settle_s=settle_s,
        started_quiet=quiet,
        drain_s=waited,
        drained=drained,
        delivery=delivery,
        cpu_s=cpu,
        loadgen_cpu_s=loadgen_cpu,
    )
