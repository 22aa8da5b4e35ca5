"""The latency picture: e2e p99 (solid) and p50 (dashed) against offered rate, one colour per
system and workload, log scales. A percentile that falls on lost messages has no value; it
is drawn as an ✕ on a dotted "lost" line above the chart's values instead of being left out,
so an overloaded step shows as a line going off the top, never as a gap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter  # noqa: E402

from bench.openloop.runner import StepResult  # noqa: E402

LineStyle = Literal["-", "--"]
PERCENTILES: tuple[tuple[str, LineStyle, str], ...] = (
    ("p99_ms", "-", "p99"),
    ("p50_ms", "--", "p50"),
)


def _plain(value: float, _: object) -> str:
    return f"{value:g}"


def _plain_log_labels(ax: Axes) -> None:
    """Numbers as 20, 50, 100 rather than 2×10¹; minor ones only on a short axis."""
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    low, high = ax.get_ylim()
    if high / low < 30:
        ax.yaxis.set_minor_formatter(FuncFormatter(_plain))


def _lines(ax: Axes, results: Sequence[StepResult], title: str, unit: str) -> None:
    groups: dict[tuple[str, str], list[StepResult]] = {}
    for r in sorted(results, key=lambda r: r.rate):
        groups.setdefault((r.system, r.workload), []).append(r)
    finite = [
        getattr(r.delivery.e2e, field)
        for r in results
        for field, _, _ in PERCENTILES
        if math.isfinite(getattr(r.delivery.e2e, field))
    ]
    lost_at = max(finite, default=1000.0) * 2.5
    handles: list[Line2D] = []
    for (system, workload), steps in groups.items():
        rates = [r.rate for r in steps]
        color = ax.plot([], [])[0].get_color()  # next colour of the cycle
        for field, style, _ in PERCENTILES:
            values = [getattr(r.delivery.e2e, field) for r in steps]
            shown = [v if math.isfinite(v) else lost_at for v in values]
            (line,) = ax.plot(rates, shown, style, color=color, marker="o", markersize=4)
            lost = [rate for rate, v in zip(rates, values, strict=True) if math.isinf(v)]
            ax.plot(lost, [lost_at] * len(lost), "x", color=color, markersize=11, mew=2)
            if style == "-":
                line.set_label(f"{system} {workload}")
                handles.append(line)
    if any(math.isinf(getattr(r.delivery.e2e, f)) for r in results for f, _, _ in PERCENTILES):
        ax.axhline(lost_at, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            "lost ✕",
            (0.5, lost_at),
            xycoords=("axes fraction", "data"),
            va="bottom",
            fontsize="small",
            color="grey",
        )
    handles += [Line2D([], [], color="black", linestyle=s, label=n) for _, s, n in PERCENTILES]
    ax.set_yscale("log")
    rates = sorted({r.rate for r in results})
    if len(rates) > 1:
        ax.set_xscale("log")
    ax.set_xticks(rates)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    _plain_log_labels(ax)
    ax.set_title(title)
    ax.set_xlabel(f"offered rate ({unit})")
    ax.set_ylabel("e2e latency from scheduled send (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, fontsize="small")


def plot(results: Sequence[StepResult], path: Path, subtitle: str) -> None:
    p2p = [r for r in results if r.workload != "fanout"]
    fanout = [r for r in results if r.workload == "fanout"]
    panels = [(p2p, "point to point", "messages/s"), (fanout, "fanout", "status changes/s")]
    panels = [p for p in panels if p[0]]
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5.5), squeeze=False)
    for ax, (rows, title, unit) in zip(axes[0], panels, strict=True):
        _lines(ax, rows, title, unit)
    figure.suptitle(
        f"Open-loop benchmark: e2e latency vs offered rate\n{subtitle}", fontsize="medium"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
