"""``make bench`` works on a fresh machine: the open-loop benchmark's smoke run (``--quick``)
drives our stack and both peers against a real broker and writes every output it promises.

Numbers are not asserted (a benchmark measures, a test does not time): only that every
system ran every workload, nothing was lost or refused at these low rates, and the tables,
the plot and the raw results were written."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_run import run_bench
from tests.support.broker import Broker

RUN_TIMEOUT_S = 300
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_STEPS = {
    ("ours", "chat"),
    ("ours", "signal"),
    ("ours", "typing"),
    ("ours", "fanout"),
    ("peer", "relay"),
    ("peer", "fanout"),
    ("peer-durable", "relay"),
}


def test_the_quick_benchmark_runs_every_system_and_loses_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    plot, tables = tmp_path / "latency.png", tmp_path / "tables.md"
    report = run_bench(
        "bench.openloop",
        broker,
        tmp_path,
        *("--plot", str(plot), "--markdown", str(tables)),
        timeout_s=RUN_TIMEOUT_S,
    )
    steps = report["steps"]
    assert {(s["system"], s["workload"]) for s in steps} == EXPECTED_STEPS
    assert len(steps) == 2 * len(EXPECTED_STEPS)  # the quick run's two rates each
    for step in steps:
        name = f"{step['system']} {step['workload']} at {step['rate']}/s"
        delivery = step["delivery"]
        assert delivery["sent"] > 0, name
        assert (delivery["lost"], delivery["errors"]) == (0, {}), name
        assert step["drained"], name
        assert step["cpu_ms_per_message"]["total"] > 0, name
    assert report["meta"]["failures"] == []

    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    text = tables.read_text()
    assert "| peer-durable | relay |" in text and "| ours | chat |" in text
