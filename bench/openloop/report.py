"""Tables (plain text and Markdown) and the results JSON of a run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import json_safe
from bench.openloop.runner import StepResult

Column = tuple[str, Callable[[StepResult], str]]


def ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "∞"  # the percentile falls on messages that were never delivered
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def errors(r: StepResult) -> str:
    d = r.delivery
    text = ", ".join(f"{code} {n}" for code, n in d.errors.items()) or "-"
    if d.retry_after is not None:
        text += f" (retry_after p50 {ms(d.retry_after.p50_ms)} ms)"
    return text


def lost(r: StepResult) -> str:
    d = r.delivery
    return f"{d.lost} ({d.lost_silently} silent)" if d.lost else "0"


def notes(r: StepResult) -> str:
    """What makes a row less clean than it looks."""
    out = [] if r.started_quiet else ["started busy"]
    if not r.drained:
        out.append(f"undrained after {r.drain_s:.0f} s")
    return ", ".join(out) or "-"


COMMON_HEAD: list[Column] = [
    ("system", lambda r: r.system),
    ("workload", lambda r: r.workload),
    ("offered/s", lambda r: f"{r.rate:g}"),
    ("sent", lambda r: str(r.delivery.sent)),
]
LATENCY: list[Column] = [
    ("e2e p50", lambda r: ms(r.delivery.e2e.p50_ms)),
    ("p90", lambda r: ms(r.delivery.e2e.p90_ms)),
    ("p99", lambda r: ms(r.delivery.e2e.p99_ms)),
    ("max", lambda r: ms(r.delivery.e2e.max_ms)),
]
TAIL: list[Column] = [
    ("ack p50", lambda r: ms(r.delivery.ack.p50_ms)),
    ("ack p99", lambda r: ms(r.delivery.ack.p99_ms)),
    ("send lag p99", lambda r: ms(r.delivery.send_lag.p99_ms)),
    ("lost", lost),
    ("errors", errors),
    ("notes", notes),
]
POINT_TO_POINT: list[Column] = [
    *COMMON_HEAD,
    ("delivered/s", lambda r: f"{r.delivery.delivered_per_s:.0f}"),
    *LATENCY,
    *TAIL,
]
FANOUT: list[Column] = [
    *COMMON_HEAD,
    ("students", lambda r: f"{r.delivery.extra.get('receivers', 0):g}"),
    ("deliveries/s", lambda r: f"{r.delivery.delivered_per_s:.0f}"),
    *LATENCY,
    ("last p50", lambda r: ms(r.delivery.extra.get("last_p50_ms", math.nan))),
    ("last p99", lambda r: ms(r.delivery.extra.get("last_p99_ms", math.nan))),
    ("superseded", lambda r: f"{r.delivery.extra.get('superseded', 0):g}"),
    *TAIL,
]


def cpu_columns(results: Sequence[StepResult]) -> list[Column]:
    labels = list(dict.fromkeys(label for r in results for label in r.cpu_s))

    def per_message(label: str) -> Callable[[StepResult], str]:
        return lambda r: f"{r.cpu_ms_per_message()[label]:.3f}" if label in r.cpu_s else "-"

    return [
        *COMMON_HEAD[:3],
        ("delivered", lambda r: str(r.delivery.delivered)),
        *[(label, per_message(label)) for label in labels],
        ("total", lambda r: f"{r.cpu_ms_per_message()['total']:.3f}"),
        ("loadgen", lambda r: f"{r.loadgen_cpu_s * 1000 / max(1, r.delivery.delivered):.3f}"),
    ]


def _cells(results: Sequence[StepResult], columns: list[Column]) -> list[list[str]]:
    return [[name for name, _ in columns]] + [[cell(r) for _, cell in columns] for r in results]


def text_table(results: Sequence[StepResult], columns: list[Column]) -> str:
    rows = _cells(results, columns)
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [
        "  ".join(
            c.rjust(w) if i > 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(results: Sequence[StepResult], columns: list[Column]) -> str:
    rows = _cells(results, columns)
    align = ["---" if i <= 1 else "---:" for i in range(len(columns))]
    lines = [rows[0], align, *rows[1:]]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines)


Table = tuple[str, Sequence[StepResult], list[Column], str]  # title, rows, columns, note

P2P_NOTE = (
    "∞: the percentile falls on messages not delivered by the end of the drain (lost: "
    "refused, dropped or still queued; silent: no error frame explains it). The peer's relay "
    "(a payload to one user, acked once published) stands in for chat, signal and typing, "
    "which also store and check."
)
FANOUT_NOTE = (
    "One sample per (change, student); a change superseded by a later one that arrives counts "
    "as delivered then. last = until the last student had the change."
)
CPU_NOTE = (
    "CPU from the first send to the end of the drain, / delivered messages (fanout: "
    "deliveries). broker = beam.smp, shared by both systems, which run one after the other. "
    "loadgen = the benchmark's own process (all clients), in no total."
)


def tables(results: Sequence[StepResult]) -> list[Table]:
    """Every table the run has rows for, rows grouped by rate."""
    p2p = sorted((r for r in results if r.workload != "fanout"), key=lambda r: r.rate)
    fanout = sorted((r for r in results if r.workload == "fanout"), key=lambda r: r.rate)
    out: list[Table] = []
    if p2p:
        title = "Point to point: latency in ms from the scheduled send"
        out.append((title, p2p, POINT_TO_POINT, P2P_NOTE))
    if fanout:
        title = "Fanout: one mentor's status changes/s to every student, ms (latest delivered)"
        out.append((title, fanout, FANOUT, FANOUT_NOTE))
    if results:
        title = "CPU ms per delivered message, per process (with its children) and total"
        out.append((title, [*p2p, *fanout], cpu_columns(results), CPU_NOTE))
    return out


def render(results: Sequence[StepResult], markdown: bool) -> str:
    parts = []
    for title, rows, columns, note in tables(results):
        if markdown:
            parts.append(f"**{title}**\n\n{markdown_table(rows, columns)}\n\n{note}")
        else:
            parts.append(f"{title}\n{text_table(rows, columns)}\n{note}")
    return "\n\n".join(parts) + "\n"


def write_json(path: Path, meta: dict[str, Any], results: Sequence[StepResult]) -> None:
    steps = [{**asdict(r), "cpu_ms_per_message": r.cpu_ms_per_message()} for r in results]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe({"meta": meta, "steps": steps}), indent=1) + "\n")
