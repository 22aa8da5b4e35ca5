"""Arguments, the loop of rounds with its samples, and the output files."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
import uvloop

from bench.common import add_settings_option, argument_parser, broker_url
from bench.connections.worker import raise_file_limit
from bench.openloop.cpu import listener_of
from bench.openloop.meta import describe_run
from bench.openloop.systems import OurSystem, our_system
from bench.soak import __doc__ as METHOD
from bench.soak.report import Totals, document, render, summarize, write_json
from bench.soak.rounds import Deadlines, RoundResult, run_round
from bench.soak.samples import Sample, Sampler

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROUNDS = 300
DEFAULTS = {"clients": 100, "sample_every": 10}
QUICK = {"rounds": 6, "clients": 20, "sample_every": 2}
BROKER_PROCESS = "beam.smp"

SEMANTICS = {
    "round": "C fresh students connect at once; pairs (0-1, 2-3, …) each send the other one "
    "send_message (with client_msg_id), receipt what they receive (message_delivered), send "
    "user_typing and ping; then all close",
    "connections": "cumulative handshakes that got their connected frame",
    "messages": "cumulative send_message acked",
    "lost": "acked to the sender but not pushed to the recipient within --deliver-timeout",
    "errors": "error frames received, by code",
    "failures": "what the client saw go wrong besides error frames: no connection, no reply "
    "within --reply-timeout, a connection lost",
    "rss": "resident set size of each process, MiB (broker: beam.smp, found by its AMQP port; "
    "its memory is the stack's alone only when the run started its own broker)",
    "wal": "size of chat.db-wal (and chat.db) in the stack's IM_DATA_DIR, MiB",
    "start": "the first sample after the first 10 % of the rounds (warm-up)",
    "slope": "least-squares MiB per 10,000 connections over the second half of the samples; "
    "early_slope: from warm-up to the middle",
}


@dataclass
class Soak:
    """What a run has found so far (kept when it is interrupted)."""

    samples: list[Sample] = field(default_factory=list)
    rounds: list[RoundResult] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    problems: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argument_parser("bench.soak", METHOD)
    p.add_argument("--clients", type=int, help="students per round, all at once (default 100)")
    p.add_argument(
        "--rounds",
        type=int,
        help=f"stop after this many rounds (default {DEFAULT_ROUNDS}; "
        "with only --minutes: no limit)",
    )
    p.add_argument("--minutes", type=float, help="stop starting rounds after this long")
    p.add_argument("--sample-every", type=int, help="rounds between memory samples (default 10)")
    p.add_argument(
        "--socketio",
        action="store_true",
        help="the same rounds through the Socket.IO binding at /socket.io/ (PROTOCOL §8)",
    )
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}")
    p.add_argument(
        "--deliver-timeout",
        type=float,
        default=10.0,
        help="s from a round's first send until every message must have arrived (default 10)",
    )
    p.add_argument(
        "--reply-timeout", type=float, default=10.0, help="s for each ack or pong (default 10)"
    )
    add_settings_option(p)
    p.add_argument(
        "--results-dir",
        type=Path,
        default=REPO / "bench" / "results",
        help="where soak-<timestamp>.json goes (default bench/results)",
    )
    p.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    p.add_argument("--logs", type=Path, help="keep the stack's logs and data in this folder")
    args = p.parse_args(argv)
    for name, value in {**DEFAULTS, **(QUICK if args.quick else {})}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rounds is None and args.minutes is None:
        args.rounds = DEFAULT_ROUNDS
    if args.clients < 1 or args.sample_every < 1 or (args.rounds is not None and args.rounds < 1):
        p.error("--clients, --rounds and --sample-every must be at least 1")
    return args


def _progress(sample: Sample) -> str:
    rss = ", ".join(f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in sample.rss_mib.items())
    return (
        f"{time.strftime('%H:%M:%S')} round {sample.round}: {sample.connections} connections, "
        f"{sample.messages} messages; RSS MiB {rss}; WAL {sample.wal_mib:.1f} MiB"
    )


async def soak(system: OurSystem, sampler: Sampler, args: argparse.Namespace, state: Soak) -> None:
    loop = asyncio.get_running_loop()
    ends_at = None if args.minutes is None else loop.time() + args.minutes * 60
    deadlines = Deadlines(reply_s=args.reply_timeout, deliver_s=args.deliver_timeout)
    run_id = uuid.uuid4().hex[:6]
    started = time.perf_counter()

    def sample(round_no: int) -> bool:
        """Take a sample; False when a process of the stack is gone (the soak stops)."""
        totals = state.totals
        taken = sampler.take(
            round_no,
            totals.connections,
            totals.sent,
            totals.delivered,
            time.perf_counter() - started,
        )
        state.samples.append(taken)
        print(_progress(taken), flush=True)
        if gone := sampler.gone():
            state.problems.append(f"exited during the soak: {', '.join(gone)}")
            return False
        return True

    if not sample(0):
        return
    round_no = 0
    while args.rounds is None or round_no < args.rounds:
        if ends_at is not None and loop.time() >= ends_at:
            break
        round_no += 1
        ids = [f"soak{run_id}-{round_no}-{i}" for i in range(args.clients)]
        users = [(user_id, system.token(user_id)) for user_id in ids]
        result = await run_round(system.ws_url, users, args.socketio, deadlines)
        state.rounds.append(result)
        state.totals.add(result)
        if not result.clean:
            print(
                f"  round {round_no}: lost {result.lost}, errors {dict(result.errors)}, "
                f"failures {dict(result.failures)}",
                flush=True,
            )
        if round_no % args.sample_every == 0 and not sample(round_no):
            return
    if state.samples[-1].round != round_no:
        sample(round_no)


def _broker(amqp_url: str) -> psutil.Process | None:
    """beam.smp, by the port it listens on (None when it is not a local process, e.g. a
    container's proxy)."""
    found = listener_of(urlparse(amqp_url).port or 5672)
    try:
        return found if found is not None and found.name() == BROKER_PROCESS else None
    except psutil.Error:
        return None


def run(args: argparse.Namespace, state: Soak) -> dict[str, Any]:
    """Start the broker (unless IM_AMQP_URL answers) and the stack, soak it; the meta data."""
    with broker_url() as amqp_url, tempfile.TemporaryDirectory(prefix="im-soak-") as tmp:
        base = args.logs or Path(tmp)
        broker = _broker(amqp_url)
        meta = describe_run(args, broker)
        with our_system(amqp_url, base / "stack", False, settings=dict(args.settings)) as system:
            processes = system.processes()
            if broker is not None:
                processes["broker"] = broker.pid
            else:
                print("broker: no local beam.smp found; its memory is not sampled", flush=True)
            sampler = Sampler(processes, Path(system.stack.env()["IM_DATA_DIR"]))
            meta["processes"] = {label: p.name() for label, p in sampler.processes.items()}
            meta["stack_settings"] = system.stack.env_overrides
            print(f"stack up: {system.ws_url}; {', '.join(processes)}", flush=True)
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    runner.run(soak(system, sampler, args, state))
            except KeyboardInterrupt:
                state.problems.append("interrupted")
                done = state.totals
                state.samples.append(
                    sampler.take(done.rounds, done.connections, done.sent, done.delivered, 0.0)
                )
        # stopped: every log is complete
        if lost := system.stack.lost_task_failures():
            state.problems.append(f"a background task failed unseen, in {', '.join(lost)}")
    return meta


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_file_limit()  # before the stack starts: the gateway inherits the limit
    stamp = time.strftime("%Y%m%d-%H%M%S")
    load_start = os.getloadavg()[0]
    state = Soak()
    meta = run(args, state)
    meta.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), problems=state.problems)
    meta["load_1min"] = {"start": load_start, "end": os.getloadavg()[0]}
    meta["semantics"] = SEMANTICS
    summary = summarize(state.samples, state.totals.rounds)
    print()
    print(render(state.samples, summary, state.totals, markdown=False))
    json_path = args.results_dir / f"soak-{stamp}.json"
    write_json(json_path, document(meta, state.samples, summary, state.totals, state.rounds))
    print(f"results: {json_path}")
    if args.markdown:
        args.markdown.write_text(render(state.samples, summary, state.totals, markdown=True))
        print(f"markdown: {args.markdown}")
    if state.problems or not state.totals.clean:
        print("PROBLEMS:\n  " + "\n  ".join(state.problems or ["lost, errors or failures above"]))
        raise SystemExit(1)
