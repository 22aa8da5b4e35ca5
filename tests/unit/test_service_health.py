"""The health file a container's health check reads: touched only while the broker is there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from shared.amqp.broker import Broker
from shared.runtime.main import report_health


async def _run_briefly(broker: Any, path: Path) -> None:
    task = asyncio.create_task(report_health(cast(Broker, broker), path, every_s=0.01))
    await asyncio.wait({task}, timeout=0.05)
    task.cancel()


async def test_touched_while_connected(tmp_path: Path) -> None:
    path = tmp_path / "healthy"
    await _run_briefly(SimpleNamespace(connected=True), path)
    assert path.exists()


async def test_not_touched_without_the_broker(tmp_path: Path) -> None:
    path = tmp_path / "healthy"
    await _run_briefly(SimpleNamespace(connected=False), path)
    assert not path.exists()
