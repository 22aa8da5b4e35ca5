"""The summary table (text or Markdown), the memory table and the results JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.connections.stats import Measure
from bench.openloop.report import ms
from bench.openloop.stats import Distribution

SEMANTICS = {
    "connect storm": "N students, handshakes scheduled evenly over --ramp seconds; per client "
    "from its scheduled start (every attempt included) to the `connected` frame and to the "
    "`mentor_status_snapshot`; total = from the storm's start to the last snapshot",
    "failures": "a client that never got there (gave up after 60 s, refused, closed) counts as "
    "infinitely late: a percentile that falls on failures is ∞ (null in JSON)",
    "retries": "close 1013 honoured: wait retry_after_ms from the close reason (1 s without "
    "one) plus 0-50 % jitter; reconnects also retry a gateway that is not listening",
    "fan-out": "one mentor sends mentor_busy with a unique status_message; per student until "
    "its mentor_status_update with that tag; the row shows the medians over the changes",
    "reconnect": "from the signal (SIGKILL / SIGTERM) to the gateway; a new gateway is started "
    "on the same port once the old one exited; each client waits 0-1 s after its drop",
    "memory": "gateway RSS (psutil) and broker memory (rabbitmqctl status: erlang = allocated "
    "by the VM) before the storm and after it plus --idle seconds; per connected student",
    "cpu_s": "CPU seconds per process (with children) over each phase; loadgen cores = CPU "
    "seconds / wall seconds of each worker process (near 1.0: the generator was a bottleneck)",
}

Column = tuple[str, Callable[[Measure], str]]
TEXT_COLUMNS = ("failures", "retries")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())


def failures(m: Measure) -> str:
    return f"{m.failed} ({_counts(m.failures)})" if m.failed else "0"


def retries(m: Measure) -> str:
    if not m.retried:
        return "0"
    return f"{m.retried} by {m.clients_retrying} clients ({_counts(m.retries)})"


def last_or_total(m: Measure) -> str:
    total = m.extra.get("total_ms")
    return ms(m.last_ms) if total is None else f"{ms(m.last_ms)} / {ms(total)}"


COLUMNS: list[Column] = [
    ("measure", lambda m: m.name),
    ("N", lambda m: str(m.clients)),
    ("p50 ms", lambda m: ms(m.latency.p50_ms)),
    ("p99 ms", lambda m: ms(m.latency.p99_ms)),
    ("last / total ms", last_or_total),
    ("failures", failures),
    ("retries", retries),
]


def memory_rows(memory: dict[str, dict[str, int]]) -> list[list[str]]:
    """Per process: MB before, MB after, KB per connected student."""
    students = max(1, memory.get("connected", {}).get("students", 0))
    before, after = memory.get("before", {}), memory.get("after_storm_idle", {})
    sockets = after.get("gateway_sockets", 0)
    rows = [["process", "before MB", "after MB", f"KB per connection ({students} up)"]]
    if sockets != students:  # half-open handshakes, or clients that gave up, still held
        rows[0][3] = f"KB per connection ({students} up, gateway holds {sockets} sockets)"
    for key, label in (
        ("gateway_rss", "gateway RSS (all gateway processes)"),
        ("broker_erlang", "broker (Erlang allocated)"),
        ("broker_rss", "broker RSS"),
    ):
        if key in before and key in after:
            per_connection_kb = (after[key] - before[key]) / 1024 / students
            mb = [f"{before[key] / 2**20:.1f}", f"{after[key] / 2**20:.1f}"]
            rows.append([label, *mb, f"{per_connection_kb:.1f}"])
    return rows


def _text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _markdown(rows: list[list[str]]) -> str:
    """Numbers right-aligned; the name column and the failures/retries texts left."""
    align = ["---" if i == 0 or name in TEXT_COLUMNS else "---:" for i, name in enumerate(rows[0])]
    return "\n".join("| " + " | ".join(r) + " |" for r in [rows[0], align, *rows[1:]])


def render(
    measures: Sequence[Measure], memory: dict[str, dict[str, int]], note: str, markdown: bool
) -> str:
    table = [[name for name, _ in COLUMNS]] + [[cell(m) for _, cell in COLUMNS] for m in measures]
    fmt = _markdown if markdown else _text
    parts = [fmt(table)]
    if len(memory_rows(memory)) > 1:
        parts.append(fmt(memory_rows(memory)))
    parts.append(note)
    return "\n\n".join(parts) + "\n"


def _jsonable(value: Any) -> Any:
    """Distributions as dicts; ∞ (a percentile on failures) and NaN (no sample) as null."""
    if isinstance(value, Distribution):
        value = asdict(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_json(path: Path, document: dict[str, Any], measures: Sequence[Measure]) -> None:
    rows = [{**asdict(m), "failed": m.failed, "retried": m.retried} for m in measures]
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**document, "measures": rows, "semantics": SEMANTICS}
    path.write_text(json.dumps(_jsonable(body), indent=1, allow_nan=False) + "\n")
