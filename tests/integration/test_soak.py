"""The churn soak's smoke run (``python -m bench.soak --quick``) drives a real stack and
writes what it promises: every message of every round delivered, a memory sample of every
process (gateway, each service, the broker) and a growth slope for each.

Numbers are not asserted beyond that (a soak measures, a test does not): a six-round run is
far too short to tell a leak from warm-up."""

from __future__ import annotations

from pathlib import Path

from tests.support.bench_run import run_bench
from tests.support.broker import Broker, docker_engine_available

RUN_TIMEOUT_S = 120
STACK = ("gateway", "presence", "chat", "calls", "help")


def test_the_quick_soak_delivers_everything_and_samples_every_process(
    broker: Broker, tmp_path: Path
) -> None:
    tables = tmp_path / "soak.md"
    markdown = ("--markdown", str(tables))
    report = run_bench("bench.soak", broker, tmp_path, *markdown, timeout_s=RUN_TIMEOUT_S)
    totals = report["totals"]
    assert totals["rounds"] == 6
    assert totals["connections"] == totals["clients"] == 6 * 20
    assert totals["sent"] == totals["delivered"] == totals["receipts"] == 6 * 20
    assert (totals["lost"], totals["errors"], totals["failures"]) == (0, {}, {})
    assert report["meta"]["problems"] == []
    assert report["meta"]["git_commit"] != "unknown"

    # a container's broker is no local process whose memory can be read
    processes = STACK if docker_engine_available() else (*STACK, "broker")
    samples = report["samples"]
    assert [s["round"] for s in samples] == [0, 2, 4, 6]
    for sample in samples:
        for label in processes:
            assert sample["rss_mib"][label] > 0, (label, sample)
        assert sample["wal_mib"] >= 0
    assert samples[-1]["connections"] == 120 and samples[-1]["wal_mib"] > 0
    for label in (*processes, "chat.db-wal"):
        summary = report["summary"][label]
        assert isinstance(summary["slope"], float), (label, summary)
        assert summary["start"] > 0 and summary["end"] > 0, (label, summary)

    text = tables.read_text()
    assert "| gateway |" in text and "| chat.db-wal |" in text
