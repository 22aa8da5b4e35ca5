"""Open-loop benchmark of our stack against a python-socketio + RabbitMQ peer.

Every workload runs at every offered rate against our stack, then against the peer, then
the peer made durable (point to point only), one system at a time: they share the broker.
Senders follow a fixed schedule and never wait; latency starts at the scheduled send time.
Prints the tables, writes the results JSON, the plot and (with --markdown) the tables in
Markdown."""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import uvloop

from bench.common import add_settings_option, broker_url
from bench.openloop.cpu import CpuMeter, listener_of
from bench.openloop.meta import describe_run
from bench.openloop.our_fanout import OurFanout
from bench.openloop.our_workloads import Chat, ChatOverSocketIO, Signal, Typing
from bench.openloop.peer_workloads import PeerFanout, PeerRelay
from bench.openloop.plot import plot
from bench.openloop.report import render, write_json
from bench.openloop.runner import StepResult, run_step
from bench.openloop.scenario import Scenario
from bench.openloop.systems import OurSystem, PeerSystem, our_system, peer_system
from shared.protocol.registry import SERVICES

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PLOT = REPO / "docs" / "performance-latency.png"
WORKLOADS = ("chat", "signal", "typing", "fanout")
# peer-durable: the peer with each server's queue a durable quorum queue (consumed with a
# prefetch of 100), so an emit is acknowledged once it is on disk, as a chat message's command
# is; the comparison for stored chat. It runs the point-to-point relay only.
SYSTEMS = ("ours", "peer", "peer-durable")
# Not in the default run: `--workloads chat,sio-chat --systems ours` sets the two bindings of
# our gateway side by side (the peer has no counterpart).
OPTIONAL_WORKLOADS = ("sio-chat",)
POINT_TO_POINT = ("chat", "signal", "typing")
FULL = {
    "rates": "100,250,500,1000,2000",
    "fanout_rates": "1,4",
    "duration": 10.0,
    "students": 1000,
    "drain": 5.0,
}
QUICK = {"rates": "50,100", "fanout_rates": "2,4", "duration": 2.0, "students": 100, "drain": 3.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="of " + ",".join(WORKLOADS + OPTIONAL_WORKLOADS),
    )
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="which to run, in this order, of " + ",".join(SYSTEMS),
    )
    p.add_argument("--rates", help=f"messages/s per step (default {FULL['rates']})")
    p.add_argument("--fanout-rates", help=f"status changes/s (default {FULL['fanout_rates']})")
    p.add_argument("--duration", type=float, help="seconds of sending per step (default 10)")
    p.add_argument("--drain", type=float, help="max seconds to wait after a step (default 5)")
    p.add_argument("--pairs", type=int, default=10, help="sender → receiver pairs")
    p.add_argument("--students", type=int, help="fanout receivers (default 1000)")
    p.add_argument("--quick", action="store_true", help="smoke run: " + str(QUICK))
    p.add_argument(
        "--deflate",
        action="store_true",
        help="permessage-deflate on both servers (IM_WS_COMPRESSION, uvicorn's "
        "ws_per_message_deflate) and offered by every client; off by default, as in the gateway",
    )
    p.add_argument(
        "--results-dir",
        type=Path,
        default=REPO / "bench" / "results",
        help="where openloop-<timestamp>.json goes (default bench/results)",
    )
    p.add_argument(
        "--plot",
        help="PNG path (default docs/performance-latency.png; "
        "with --quick: beside the results JSON); '' for none",
    )
    p.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    p.add_argument(
        "--gateways",
        type=int,
        default=1,
        help="our gateway processes, sharing the port (SO_REUSEPORT; the kernel spreads the "
        "connections, so a pair's two ends may be on different gateways)",
    )
    add_settings_option(p)
    p.add_argument(
        "--replicas",
        type=_replicas,
        default={},
        help="processes per service, e.g. chat=2,calls=2 (default one each)",
    )
    args = p.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    unknown = set(_names(args.workloads)) - set(WORKLOADS + OPTIONAL_WORKLOADS)
    if unknown or not set(_names(args.systems)) <= set(SYSTEMS):
        p.error(f"unknown workload or system: {sorted(unknown) or args.systems}")
    return args


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _rates(text: str) -> list[float]:
    return [float(r) for r in _names(text)]


def scenarios(
    target: OurSystem | PeerSystem, args: argparse.Namespace
) -> list[tuple[Scenario, list[float]]]:
    """What to run against ``target``. The peer has one relay for chat, signal and typing
    (to it they are the same: a payload to one user), run once."""
    chosen = _names(args.workloads)
    deflate = args.deflate
    rates, fanout_rates = _rates(args.rates), _rates(args.fanout_rates)
    plan: list[tuple[Scenario, list[float]]] = []
    if isinstance(target, OurSystem):
        kinds = {"chat": Chat, "sio-chat": ChatOverSocketIO, "signal": Signal, "typing": Typing}
        for name in chosen:
            if name in kinds:
                plan.append((kinds[name](target, args.pairs, deflate), rates))
        if "fanout" in chosen:
            plan.append((OurFanout(target, args.students, deflate), fanout_rates))
    else:
        if set(chosen) & set(POINT_TO_POINT):
            plan.append((PeerRelay(target, args.pairs, deflate), rates))
        if "fanout" in chosen and not target.durable:
            plan.append((PeerFanout(target, args.students, deflate), fanout_rates))
    return plan


async def run_system(
    target: OurSystem | PeerSystem, meter: CpuMeter, args: argparse.Namespace, run_id: str
) -> tuple[list[StepResult], list[str]]:
    results: list[StepResult] = []
    failures: list[str] = []
    for scenario, rates in scenarios(target, args):
        try:
            for step, rate in enumerate(rates):
                tag = f"{scenario.system[0]}{scenario.workload[:2]}{step}{run_id}"
                result = await run_step(scenario, tag, rate, args.duration, args.drain, meter)
                results.append(result)
                d = result.delivery
                print(
                    f"  {scenario.system} {scenario.workload} {rate:g}/s: sent {d.sent}, "
                    f"delivered {d.delivered}, e2e p99 {d.e2e.p99_ms:.1f} ms, lost {d.lost}, "
                    f"settle {result.settle_s:.1f} s"
                    f"{'' if result.started_quiet else ' (started while still busy)'}, "
                    f"drain {result.drain_s:.1f} s",
                    flush=True,
                )
        except Exception as exc:  # noqa: BLE001 - one broken workload must not lose the run
            failure = f"{scenario.system} {scenario.workload}: {type(exc).__name__}: {exc}"
            print(f"  FAILED {failure}", flush=True)
            failures.append(failure)
        finally:
            await scenario.close()
    return results, failures


@contextmanager
def started(
    system: str, amqp_url: str, base: Path, args: argparse.Namespace
) -> Iterator[OurSystem | PeerSystem]:
    deflate = args.deflate
    if system == "ours":
        settings = dict(args.settings)
        with our_system(
            amqp_url, base / "ours", deflate, args.gateways, args.replicas, settings
        ) as ours:
            yield ours
    else:
        durable = system == "peer-durable"
        with peer_system(amqp_url, base / system, deflate, durable) as peer:
            yield peer


def _replicas(text: str) -> dict[str, int]:
    """``chat=2,calls=2`` → {"chat": 2, "calls": 2}."""
    counts: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, count = item.partition("=")
        if name not in SERVICES or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"{item!r}: expected <service>=<count ≥ 1>")
        counts[name] = int(count)
    return counts


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1000+ sockets; servers inherit
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = uuid.uuid4().hex[:4]
    results: list[StepResult] = []
    failures: list[str] = []
    with broker_url() as amqp_url, tempfile.TemporaryDirectory(prefix="im-openloop-") as tmp:
        broker = listener_of(urlparse(amqp_url).port or 5672)
        meta = describe_run(args, broker)
        # One system at a time: the broker is shared, so each step's broker CPU is its own.
        for system in _names(args.systems):
            print(f"{system}: starting", flush=True)
            with started(system, amqp_url, Path(tmp), args) as target:
                processes = target.processes()
                if broker is not None:
                    processes["broker"] = broker.pid
                meter = CpuMeter(processes)
                meta.setdefault("processes", {})[system] = meter.names()
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:
                    done, failed = loop.run(run_system(target, meter, args, run_id))
                results += done
                failures += failed
    meta["failures"] = failures
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print()
    print(render(results, markdown=False))
    json_path = args.results_dir / f"openloop-{stamp}.json"
    write_json(json_path, meta, results)
    print(f"results: {json_path}")
    if args.plot is None:
        plot_path = json_path.with_suffix(".png") if args.quick else DEFAULT_PLOT
    else:
        plot_path = Path(args.plot) if args.plot else None
    if plot_path is not None:
        plot(results, plot_path, f"{meta['started']}, {meta['machine']}")
        print(f"plot: {plot_path}")
    if args.markdown:
        args.markdown.write_text(render(results, markdown=True))
        print(f"markdown: {args.markdown}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        raise SystemExit(1)
