"""The soak's arithmetic: the growth slope, the warm-up sample, the summary and its tables."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.soak.main import parse_args
from bench.soak.report import (
    DB,
    WAL,
    Totals,
    document,
    growth,
    render,
    slope,
    summarize,
    warm_index,
    write_json,
)
from bench.soak.rounds import RoundResult
from bench.soak.samples import Sample, ordered


def _sample(round_no: int, gateway: float | None, chat: float, wal: float = 1.0) -> Sample:
    """A sample after ``round_no`` rounds of 100 connections."""
    connections = round_no * 100
    return Sample(
        round_no,
        connections,
        connections,
        connections,
        elapsed_s=round_no * 0.5,
        rss_mib={"gateway": gateway, "chat": chat},
        wal_mib=wal,
        db_mib=round_no * 0.01,
    )


def test_the_slope_is_the_least_squares_fit() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 0), (1, 1), (2, 0), (3, 1)]) == pytest.approx(0.2)  # noise: small slope
    assert slope([(0, 7), (10, 7), (20, 7)]) == 0.0


def test_no_slope_from_one_point_or_one_x() -> None:
    assert slope([]) is None
    assert slope([(1, 2)]) is None
    assert slope([(5, 1), (5, 9)]) is None
    assert slope([(0, 1), (1, float("nan"))]) is None  # an unusable point is left out


def test_warm_up_ends_at_the_first_sample_after_a_tenth_of_the_rounds() -> None:
    samples = [_sample(r, 60.0, 80.0) for r in range(0, 101, 10)]
    assert samples[warm_index(samples, 100)].round == 10
    assert samples[warm_index(samples, 95)].round == 10  # ceil(9.5)
    quick = [_sample(r, 60.0, 80.0) for r in (0, 2, 4, 6)]
    assert quick[warm_index(quick, 6)].round == 2  # at least one round, even of six


def test_a_leak_keeps_its_slope_and_a_settling_cache_flattens() -> None:
    rounds = list(range(0, 401, 10))  # 40,000 connections
    # gateway: 1 MiB per 1,000 connections throughout; chat: grows, then stays at 100
    samples = [_sample(r, 60.0 + r / 10, min(100.0, 80.0 + r / 5)) for r in rounds]
    leak = growth(samples, "gateway", 400)
    assert leak.slope == pytest.approx(10.0)  # MiB per 10,000 connections
    assert leak.early_slope == pytest.approx(10.0)
    assert (leak.initial, leak.start, leak.end, leak.max) == (60.0, 64.0, 100.0, 100.0)
    assert leak.growth == pytest.approx(36.0)
    settled = growth(samples, "chat", 400)
    assert settled.slope == pytest.approx(0.0)
    assert settled.early_slope is not None and settled.early_slope > 5
    assert settled.max == 100.0


def test_a_process_gone_is_left_out_of_its_fit() -> None:
    samples = [_sample(r, None if r == 30 else 50.0 + r, 80.0) for r in range(0, 41, 10)]
    gateway = growth(samples, "gateway", 40)
    assert gateway.slope == pytest.approx(100.0)  # 1 MiB per round of 100 connections
    assert gateway.max == 90.0


def test_the_summary_has_every_process_and_both_files() -> None:
    samples = [_sample(r, 60.0, 80.0, wal=0.5 + r / 100) for r in range(0, 21, 2)]
    summary = summarize(samples, 20)
    assert list(summary) == ["gateway", "chat", WAL, DB]
    assert summary[WAL].max == pytest.approx(0.7)
    assert summary["gateway"].slope == 0.0
    assert summarize([], 0)["chat.db"].slope is None


def test_totals_add_up_rounds() -> None:
    totals = Totals()
    for lost in (0, 2):
        result = RoundResult(clients=10, connected=10, sent=10, delivered=10 - lost, lost=lost)
        result.errors = Counter({"unavailable": lost})
        result.seconds = 1.0 + lost
        totals.add(result)
    assert (totals.rounds, totals.connections, totals.delivered, totals.lost) == (2, 20, 18, 2)
    assert totals.as_dict()["errors"] == {"unavailable": 2}
    assert totals.as_dict()["round_s"] == {"p50": 2.0, "max": 3.0}
    assert not totals.clean


def test_tables_and_json(tmp_path: Path) -> None:
    samples = [_sample(r, 60.0 + r, 80.0) for r in (0, 2, 4, 6)]
    summary = summarize(samples, 6)
    totals = Totals(rounds=6, connections=600, sent=600, delivered=600)
    text = render(samples, summary, totals, markdown=False)
    assert "gateway" in text and "lost 0; errors: none" in text
    markdown = render(samples, summary, totals, markdown=True)
    assert "| round | connections | messages | gateway | chat | WAL | DB | elapsed s |" in markdown
    assert "| gateway | 60.0 | 62.0 | 66.0 | 66.0 | +4.00 | +100.00 | +100.00 |" in markdown
    path = tmp_path / "soak.json"
    write_json(path, document({"git_commit": "abc"}, samples, summary, totals, []))
    written = json.loads(path.read_text())
    assert written["summary"]["gateway"]["slope"] == pytest.approx(100.0)
    assert written["summary"]["chat"]["slope"] == 0.0
    assert len(written["samples"]) == 4 and written["totals"]["lost"] == 0


def test_process_columns_keep_the_stacks_order() -> None:
    labels = ["broker", "help", "chat-2", "gateway", "chat-1", "presence", "calls", "other"]
    assert ordered(labels) == [
        "gateway",
        "presence",
        "chat-1",
        "chat-2",
        "calls",
        "help",
        "broker",
        "other",
    ]


def test_arguments_quick_and_limits() -> None:
    quick = parse_args(["--quick"])
    assert (quick.rounds, quick.clients, quick.sample_every) == (6, 20, 2)
    default = parse_args([])
    assert (default.rounds, default.clients, default.sample_every) == (300, 100, 10)
    timed = parse_args(["--minutes", "5", "--set", "IM_LOG_LEVEL=DEBUG"])
    assert timed.rounds is None and timed.settings == [("IM_LOG_LEVEL", "DEBUG")]
    assert parse_args(["--quick", "--clients", "50"]).clients == 50
