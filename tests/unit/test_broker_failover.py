"""Broker URLs from the settings, the failover connection's choice of node, and the local
cluster's plan (no broker needed)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from shared.amqp.failover import FailoverConnection
from shared.settings import Settings
from tools.rabbit_cluster import LocalCluster

URLS = [f"amqp://guest:guest@rabbit{i}:5672/" for i in (1, 2, 3)]


def with_heartbeat_10(urls: list[str]) -> list[str]:
    return [f"{url}?heartbeat=10" for url in urls]


def test_the_broker_urls_come_from_the_list_else_the_single_url() -> None:
    assert Settings(amqp_url=URLS[0]).broker_urls() == with_heartbeat_10([URLS[0]])
    listed = Settings(amqp_url="amqp://ignored/", amqp_urls=f" {URLS[0]}, {URLS[1]},,{URLS[2]} ")
    assert listed.broker_urls() == with_heartbeat_10(URLS)


def test_the_broker_urls_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IM_AMQP_URLS", ",".join(URLS))
    monkeypatch.setenv("IM_AMQP_HEARTBEAT_S", "5")
    assert Settings().broker_urls() == [f"{url}?heartbeat=5" for url in URLS]


def test_every_url_gets_the_heartbeat_unless_it_sets_its_own() -> None:
    urls = ",".join(
        [
            "amqp://u:p@rabbit1:5672/vhost?heartbeat=30",  # its own: kept
            "amqps://u:p%40ss@rabbit2/%2F?connection_timeout=3000",  # other options kept
            "amqp://rabbit3",
        ]
    )
    assert Settings(amqp_urls=urls, amqp_heartbeat_s=0).broker_urls() == [
        "amqp://u:p@rabbit1:5672/vhost?heartbeat=30",
        "amqps://u:p%40ss@rabbit2/%2F?connection_timeout=3000&heartbeat=0",
        "amqp://rabbit3?heartbeat=0",
    ]


async def test_each_lost_connection_or_failed_attempt_moves_to_the_next_node() -> None:
    connection = FailoverConnection(URLS, first=1)
    seen = [str(connection.url)]
    for _ in range(3):
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lost.set_exception(ConnectionResetError("the node died"))
        await connection._on_connection_close(lost)
        seen.append(str(connection.url))
    assert seen == [URLS[1], URLS[2], URLS[0], URLS[1]]
    await connection.close()


def test_no_url_is_refused() -> None:
    with pytest.raises(ValueError):
        FailoverConnection([])


def test_a_local_cluster_gives_every_node_its_own_ports_and_one_cookie(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, size=3)
    ports = [p for node in cluster.nodes for p in (node.port, node.dist_port)]
    assert len(set(ports)) == 6
    assert len({node.name for node in cluster.nodes}) == 3
    assert cluster.urls == [node.url for node in cluster.nodes]
    homes = {node._env()["HOME"] for node in cluster.nodes}
    assert len(homes) == 1  # the Erlang cookie lives there
    if os.geteuid() != 0:
        assert homes == {str(tmp_path.resolve() / "home")}
