"""What a soak found: totals over every round, the samples as a table, and per process (and
for chat's database files) the memory after warm-up, at the end, its maximum and its growth
slope; plus the results JSON. Everything here but :func:`write_json` is pure."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import json_safe
from bench.soak.rounds import RoundResult
from bench.soak.samples import Sample

WARM_UP_FRACTION = 0.1  # the first 10 % of the rounds fill caches and pools: not growth
PER_CONNECTIONS = 10_000  # slopes are MiB per this many connections
WAL = "chat.db-wal"
DB = "chat.db"


@dataclass
class Totals:
    rounds: int = 0
    clients: int = 0
    connections: int = 0
    sent: int = 0
    delivered: int = 0
    receipts: int = 0
    typing: int = 0
    pongs: int = 0
    lost: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    round_seconds: list[float] = field(default_factory=list)

    def add(self, result: RoundResult) -> None:
        self.rounds += 1
        self.clients += result.clients
        self.connections += result.connected
        self.sent += result.sent
        self.delivered += result.delivered
        self.receipts += result.receipts
        self.typing += result.typing
        self.pongs += result.pongs
        self.lost += result.lost
        self.errors.update(result.errors)
        self.failures.update(result.failures)
        self.round_seconds.append(result.seconds)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.errors or self.failures)

    def as_dict(self) -> dict[str, Any]:
        seconds = sorted(self.round_seconds)
        out = {k: v for k, v in asdict(self).items() if k != "round_seconds"}
        out["errors"], out["failures"] = dict(self.errors), dict(self.failures)
        out["round_s"] = {
            "p50": statistics.median(seconds) if seconds else None,
            "max": seconds[-1] if seconds else None,
        }
        return out


@dataclass(frozen=True)
class Growth:
    """One series (a process's RSS, or a file's size) in MiB over the soak."""

    initial: float | None  # the first sample, before any round
    start: float | None  # the first sample after warm-up
    end: float | None  # the last sample
    max: float | None
    early_slope: float | None  # MiB per 10,000 connections, warm-up to the middle
    slope: float | None  # the same over the second half of the samples: the one to read

    @property
    def growth(self) -> float | None:
        return None if self.start is None or self.end is None else self.end - self.start


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """The least-squares slope of y over x; None with under two points or one x only."""
    usable = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if len(usable) < 2:
        return None
    mean_x = statistics.fmean(x for x, _ in usable)
    mean_y = statistics.fmean(y for _, y in usable)
    spread = sum((x - mean_x) ** 2 for x, _ in usable)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in usable) / spread


def warm_index(samples: Sequence[Sample], rounds: int) -> int:
    """The first sample taken after the first 10 % of the rounds (at least one round)."""
    after = max(1, math.ceil(rounds * WARM_UP_FRACTION))
    return next((i for i, s in enumerate(samples) if s.round >= after), len(samples) - 1)


def value_of(label: str) -> Callable[[Sample], float | None]:
    """How a sample gives ``label``'s MiB: a process's RSS, or the WAL's or database's size."""
    if label == WAL:
        return lambda s: s.wal_mib
    if label == DB:
        return lambda s: s.db_mib
    return lambda s: s.rss_mib.get(label)


def _fit(samples: Sequence[Sample], value: Callable[[Sample], float | None]) -> float | None:
    points = [(float(s.connections), v) for s in samples if (v := value(s)) is not None]
    fitted = slope(points)
    return None if fitted is None else fitted * PER_CONNECTIONS


def growth(samples: Sequence[Sample], label: str, rounds: int) -> Growth:
    """``label``'s series summed up; slopes fitted over connections made."""
    if not samples:
        return Growth(None, None, None, None, None, None)
    value = value_of(label)
    warm, middle = warm_index(samples, rounds), len(samples) // 2
    known = [v for s in samples if (v := value(s)) is not None]
    return Growth(
        initial=value(samples[0]),
        start=value(samples[warm]),
        end=value(samples[-1]),
        max=max(known) if known else None,
        early_slope=_fit(samples[warm : middle + 1], value),
        slope=_fit(samples[middle:], value),
    )


def labels_of(samples: Sequence[Sample]) -> list[str]:
    """Every process label, in the samples' order, then the two files."""
    processes = list(dict.fromkeys(label for s in samples for label in s.rss_mib))
    return [*processes, WAL, DB]


def summarize(samples: Sequence[Sample], rounds: int) -> dict[str, Growth]:
    return {label: growth(samples, label, rounds) for label in labels_of(samples)}


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    """Plain text (first column left-aligned, the rest right-aligned) or Markdown."""
    if markdown:
        align = ["---", *["---:"] * (len(headers) - 1)]
        return "\n".join("| " + " | ".join(row) + " |" for row in [headers, align, *rows])
    cells = [headers, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def samples_table(samples: Sequence[Sample], markdown: bool) -> str:
    processes = labels_of(samples)[:-2]
    headers = ["round", "connections", "messages", *processes, "WAL", "DB", "elapsed s"]
    rows = [
        [
            str(s.round),
            str(s.connections),
            str(s.messages),
            *(mib(s.rss_mib.get(label)) for label in processes),
            mib(s.wal_mib),
            mib(s.db_mib),
            f"{s.elapsed_s:.1f}",
        ]
        for s in samples
    ]
    return table(headers, rows, markdown)


def summary_table(summary: dict[str, Growth], markdown: bool) -> str:
    headers = ["", "initial", "start", "end", "max", "growth", "early slope", "slope"]
    rows = [
        [
            label,
            mib(g.initial),
            mib(g.start),
            mib(g.end),
            mib(g.max),
            signed(g.growth),
            signed(g.early_slope),
            signed(g.slope),
        ]
        for label, g in summary.items()
    ]
    return table(headers, rows, markdown)


def totals_line(totals: Totals) -> str:
    errors = ", ".join(f"{code} {n}" for code, n in sorted(totals.errors.items())) or "none"
    failures = ", ".join(f"{what} {n}" for what, n in sorted(totals.failures.items())) or "none"
    seconds = totals.as_dict()["round_s"]
    pace = (
        f"; a round took {seconds['p50']:.2f} s (median), {seconds['max']:.2f} s at most"
        if totals.round_seconds
        else ""
    )
    return (
        f"{totals.rounds} rounds, {totals.connections} connections of {totals.clients}, "
        f"{totals.sent} messages sent (acked), {totals.delivered} delivered, "
        f"{totals.receipts} receipts, {totals.typing} typing, {totals.pongs} pongs; "
        f"lost {totals.lost}; errors: {errors}; failures: {failures}{pace}"
    )


SUMMARY_NOTE = (
    "MiB: RSS of each process (broker: beam.smp), size of chat's database files. initial: "
    "before the first round; start: the first sample after the first 10 % of the rounds "
    "(warm-up); growth: end - start; slope: least-squares MiB per 10,000 connections over the "
    "second half of the samples (early slope: from warm-up to the middle). A slope that stays "
    "after 30,000+ connections is a leak; one that falls from early to late is a cache settling."
)


def render(
    samples: Sequence[Sample], summary: dict[str, Growth], totals: Totals, markdown: bool
) -> str:
    if markdown:
        return (
            f"**Samples** (RSS MiB per process, chat's WAL and database MiB)\n\n"
            f"{samples_table(samples, True)}\n\n**Summary** (MiB)\n\n"
            f"{summary_table(summary, True)}\n\n{SUMMARY_NOTE}\n\n{totals_line(totals)}\n"
        )
    return (
        f"Samples (RSS MiB per process, chat's WAL and database MiB)\n"
        f"{samples_table(samples, False)}\n\nSummary (MiB)\n{summary_table(summary, False)}\n"
        f"{SUMMARY_NOTE}\n\n{totals_line(totals)}\n"
    )


def document(
    meta: dict[str, Any],
    samples: Sequence[Sample],
    summary: dict[str, Growth],
    totals: Totals,
    rounds: Sequence[RoundResult],
) -> dict[str, Any]:
    """Everything a results file holds."""
    return {
        "meta": meta,
        "totals": totals.as_dict(),
        "summary": {
            label: {**asdict(g), "growth": g.growth, "unit": "MiB; slopes MiB per 10k conn."}
            for label, g in summary.items()
        },
        "samples": [asdict(s) for s in samples],
        "rounds": [
            {
                "connected": r.connected,
                "sent": r.sent,
                "delivered": r.delivered,
                "lost": r.lost,
                "errors": dict(r.errors),
                "failures": dict(r.failures),
                "seconds": round(r.seconds, 3),
            }
            for r in rounds
        ],
    }


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(content), indent=1) + "\n")
