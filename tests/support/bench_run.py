"""Running a benchmark module's smoke run as ``make`` would, against the tests' broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.broker import Broker
from tests.support.stack import REPO


def run_bench(
    module: str, broker: Broker, results_dir: Path, *args: str, timeout_s: float
) -> dict[str, Any]:
    """``python -m <module> --quick --results-dir <results_dir> <args>``; it must exit 0.
    Returns the one results JSON it wrote there."""
    command = [sys.executable, "-m", module, "--quick", "--results-dir", str(results_dir), *args]
    env = {**os.environ, "IM_AMQP_URL": broker.url}
    run = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [results] = results_dir.glob(f"{module.rsplit('.', 1)[-1]}-*.json")
    report: dict[str, Any] = json.loads(results.read_text())
    return report
