"""What every benchmark shares: a broker to run against, one way to print latencies, the
``--set IM_X=value`` option for our processes' settings, and JSON without NaN or infinity."""

from __future__ import annotations

import argparse
import math
import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from tests.support.broker import running_broker
from tools.rabbit import port_open


@contextmanager
def broker_url() -> Iterator[str]:
    """The broker at IM_AMQP_URL when one answers there, else a private one for the run."""
    url = os.environ.get("IM_AMQP_URL")
    if url:
        parsed = urlparse(url)
        if port_open(parsed.port or 5672, parsed.hostname or "localhost"):
            yield url
            return
    with running_broker() as broker:
        yield broker.url


def summary(name: str, samples_s: list[float]) -> str:
    """``name n=… p50=… p95=… p99=… max=…`` in milliseconds."""
    ms = sorted(s * 1000 for s in samples_s)

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, round(q * (len(ms) - 1)))]

    return (
        f"{name:<34} n={len(ms):<4} p50={statistics.median(ms):7.2f} ms  p95={pct(0.95):7.2f} ms"
        f"  p99={pct(0.99):7.2f} ms  max={ms[-1]:7.2f} ms"
    )


def im_setting(text: str) -> tuple[str, str]:
    """``IM_X=value`` → ("IM_X", "value"): an ``argparse`` type for ``--set``."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("IM_"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected IM_<NAME>=<value>")
    return name, value


def argument_parser(module: str, method: str) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``, its help led by ``method`` as written."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=method,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    """``--set IM_X=value`` (repeatable) into ``args.settings``, a list of (name, value). The
    stack drops ``IM_`` variables from its own environment, so this is how a run changes one."""
    parser.add_argument(
        "--set",
        dest="settings",
        type=im_setting,
        action="append",
        default=[],
        help="an IM_ setting for our processes, e.g. --set IM_CHAT_PARTITIONS=1 (repeatable)",
    )


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float (JSON has neither) as None: a latency that
    falls on lost messages, a slope of too few samples."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
