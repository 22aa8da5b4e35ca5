"""What a results file says about the run besides the numbers: when, where, with what, and
what the numbers mean."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("websockets", "uvicorn", "aio-pika", "python-socketio", "python-engineio", "psutil")

SEMANTICS = {
    "latency": "from the scheduled send time (t0 + i/rate), not the actual send: no "
    "coordinated omission; senders never wait for replies",
    "e2e": "until the push reached the receiver (chat: message_received by client_msg_id; "
    "signal: call_signal by signal.k; typing: k-th user_typing push of a pair = its k-th "
    "send; peer relay: msg by payload.k)",
    "ack": "until the ack or error frame (peer: the Socket.IO ack) for that message",
    "percentiles": "nearest rank over every sent message; a lost message counts as infinitely "
    "late, so a percentile that falls on lost messages is null (∞ in tables)",
    "fanout": "latest delivered: a status change superseded by a later one that arrives counts "
    "as delivered when the later one arrived (PROTOCOL §5 coalescing); one sample per "
    "(change, student); 'last' = per change, until the last student had it",
    "lost": "sent but not delivered by the end of the drain period: refused, dropped or still "
    "queued; 'silent' = no error frame explains it (typing: lost minus errors, as its pushes "
    "are matched by order)",
    "cpu": "user+system seconds of each process and its descendants from the first send to the "
    "end of the drain, divided by delivered messages; the broker (beam.smp) is shared, "
    "so the systems run one after the other; loadgen = this process, in no total",
    "delivered_per_s": "deliveries / max(step duration, time from the first scheduled send to "
    "the last delivery)",
}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _command(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


def describe_run(args: argparse.Namespace, broker: psutil.Process | None) -> dict[str, Any]:
    # what was measured, when the tree differs from the commit (others may be editing it)
    changed = _command("git", "status", "--porcelain", "--", "services", "shared")
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": _command("git", "rev-parse", "--short", "HEAD"),
        "uncommitted_in_services_and_shared": []
        if changed == "unknown"
        else [c.strip() for c in changed.splitlines()],
        "rabbitmq": _command("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"),
        "broker_found": broker is not None,
        "packages": {name: _version(name) for name in PACKAGES},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "semantics": SEMANTICS,
    }
