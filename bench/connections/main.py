"""Arguments, the order of a run, the global timeout and the output files."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import uvloop

from bench.common import add_settings_option, argument_parser
from bench.connections import __doc__ as METHOD
from bench.connections.fleet import Fleet
from bench.connections.measures import Phases
from bench.connections.report import SEMANTICS, render, write_json
from bench.connections.system import Target, running
from bench.connections.worker import raise_file_limit
from bench.openloop.meta import describe_run
from bench.openloop.report import ms

REPO = Path(__file__).resolve().parents[2]
QUICK_CLIENTS = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argument_parser("bench.connections", METHOD)
    p.add_argument("--clients", type=int, help="students N (default 5000; --quick: 300)")
    p.add_argument("--workers", type=int, default=4, help="load-generator processes")
    p.add_argument(
        "--gateways", type=int, default=1, help="gateway processes sharing the port (SO_REUSEPORT)"
    )
    p.add_argument("--ramp", type=float, default=1.0, help="s over which handshakes start")
    p.add_argument("--idle", type=float, default=5.0, help="s idle before reading memory")
    p.add_argument("--changes", type=int, default=5, help="status changes for the fan-out")
    p.add_argument("--spacing", type=float, default=1.0, help="s between status changes")
    p.add_argument("--fanout-timeout", type=float, default=30.0, help="s to wait for updates")
    p.add_argument("--skip-reconnect", action="store_true", help="no gateway restarts")
    p.add_argument(
        "--compression",
        action="store_true",
        help="IM_WS_COMPRESSION=true and clients offer permessage-deflate (default: off)",
    )
    add_settings_option(p)
    p.add_argument("--quick", action="store_true", help=f"smoke run, N={QUICK_CLIENTS}")
    p.add_argument("--timeout", type=float, default=540.0, help="s for all measures together")
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    p.add_argument("--logs", type=Path, help="keep the stack's logs in this folder")
    args = p.parse_args(argv)
    if args.clients is None:
        args.clients = QUICK_CLIENTS if args.quick else 5000
    return args


async def measure(target: Target, args: argparse.Namespace, phases: Phases) -> list[str]:
    """Every measure in order; returns what went wrong (a timeout, a crash) instead of raising,
    so the numbers taken so far are still written."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=args.workers + 4))
    problems: list[str] = []
    steps: list[tuple[str, Any]] = [
        ("storm", lambda: phases.storm(args.ramp, args.idle)),
        ("fanout", lambda: phases.fanout(args.changes, args.spacing, args.fanout_timeout)),
    ]
    if not args.skip_reconnect:
        steps.append(("reconnect after SIGKILL", lambda: phases.reconnect(hard=True)))
        steps.append(("reconnect after SIGTERM", lambda: phases.reconnect(hard=False)))
    deadline = loop.time() + args.timeout
    try:
        async with asyncio.timeout_at(deadline):
            for name, step in steps:
                print(f"{time.strftime('%H:%M:%S')} {name} …", flush=True)
                try:
                    await step()
                except (OSError, RuntimeError, AssertionError, EOFError) as exc:
                    problems.append(f"{name}: {type(exc).__name__}: {exc}")
                    print(f"  FAILED {problems[-1]}", flush=True)
                    if name == "storm":
                        break
        drops = await asyncio.wait_for(phases.fleet.stop(), 30)
        phases.phases["drops_by_close_code"] = {"per_worker": drops}
    except TimeoutError:
        problems.append(f"global timeout ({args.timeout:.0f} s) hit")
        print(f"  {problems[-1]}", flush=True)
    finally:
        phases.fleet.close()  # terminates workers that did not stop: their pipes end
    return problems


def note(args: argparse.Namespace, phases: Phases, load: tuple[float, float]) -> str:
    busiest = max(
        (max(p.get("loadgen_cores_per_worker") or [0.0]) for p in phases.phases.values()),
        default=0.0,
    )
    lag = phases.phases.get("storm", {}).get("generator_lag_ms", {}).get("p99_ms")
    return (
        f"{args.clients} students over {args.workers} worker processes, {args.gateways} "
        f"gateway process{'es' if args.gateways > 1 else ''}, handshakes over "
        f"{args.ramp:g} s, compression {'on' if args.compression else 'off'}; load average "
        f"(1 min) {load[0]:.2f} at start, {load[1]:.2f} at end; busiest generator worker "
        f"{busiest:.2f} cores; generator start lag p99 {lag if lag is None else round(lag)} ms."
    )


def restart_line(restart: dict[str, Any], graceful: bool) -> str:
    signalled, ready = restart["signalled"], restart["ready"]
    killed = graceful and restart["exit_code"] == -9  # Process.terminate: SIGKILL after 15 s
    return (
        f"old gateway gone after {restart['exited'] - signalled:.1f} s (exit code "
        f"{restart['exit_code']}{', killed: SIGTERM did not stop it in 15 s' if killed else ''})"
        f"; new one ready after "
        f"{'(not within the timeout)' if ready is None else f'{ready - signalled:.1f} s'}"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_file_limit()  # before the stack starts: the gateway inherits the limit
    stamp = time.strftime("%Y%m%d-%H%M%S")
    load_start = os.getloadavg()[0]
    with running(args.compression, args.logs, args.gateways, dict(args.settings)) as target:
        tokens = [(f"s{i}", target.system.token(f"s{i}")) for i in range(args.clients)]
        broker = psutil.Process(target.broker_pid) if target.broker_pid else None
        meta = describe_run(args, broker)
        fleet = Fleet(tokens, args.workers, args.compression)
        phases = Phases(target, fleet, args.compression)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            problems = runner.run(measure(target, args, phases))
    load = (load_start, os.getloadavg()[0])
    meta.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), problems=problems)
    meta["load_1min"] = {"start": load[0], "end": load[1]}
    meta["semantics"] = SEMANTICS
    summary = note(args, phases, load)
    print()
    print(render(phases.measures, phases.memory, summary, markdown=False))
    for measure_row in phases.measures:
        for change in measure_row.extra.get("changes", []):
            d = change["latency"]
            print(
                f"  {change['tag']}: mentor's ack {ms(change['mentor_reply_ms'])} ms, first "
                f"{ms(change['first_ms'])} ms, p50 {ms(d.p50_ms)} ms, p99 {ms(d.p99_ms)} ms, last "
                f"{ms(change['last_ms'])} ms, missing {d.missing} of {d.count}"
            )
    for label, info in phases.phases.items():
        if "wall_s" in info:
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in info["cpu_s"].items())
            print(f"{label}: {info['wall_s']:.1f} s wall; CPU s: {cpu}")
        if "cpu_ms_per_connected" in info:
            per = info["cpu_ms_per_connected"]
            parts = ", ".join(f"{k} {v:.1f}" for k, v in per.items())
            print(f"  CPU ms per student with a snapshot: {parts}; total {sum(per.values()):.1f}")
        if "restart" in info:
            print("  " + restart_line(info["restart"], graceful="SIGTERM" in label))
    json_path = args.results_dir / f"connections-{stamp}.json"
    document = {"meta": meta, "phases": phases.phases, "memory": phases.memory}
    write_json(json_path, document, phases.measures)
    print(f"results: {json_path}")
    if args.markdown:
        args.markdown.write_text(render(phases.measures, phases.memory, summary, markdown=True))
        print(f"markdown: {args.markdown}")
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems))
        raise SystemExit(1)
