"""``make bench`` works on a fresh machine: the open-loop benchmark's smoke run (``--quick``)
drives our stack and both peers against a real broker and writes every output it promises.

Numbers are not asserted (a benchmark measures, a test does not time): only that every
system ran every workload, nothing was lost or refused at these low rates, and the tables,
the plot and the raw results were written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.broker import Broker
from tests.support.stack import REPO

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
    command = [sys.executable, "-m", "bench.openloop", "--quick", "--results-dir", str(tmp_path)]
    command += ["--plot", str(plot), "--markdown", str(tables)]
    env = {**os.environ, "IM_AMQP_URL": broker.url}
    run = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    [results] = tmp_path.glob("openloop-*.json")
    report = json.loads(results.read_text())
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
