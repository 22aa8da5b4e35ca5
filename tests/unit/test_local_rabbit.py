"""The private RabbitMQ node's port plan and install hygiene (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import rabbit
from tools.rabbit import LocalRabbit


def test_the_distribution_port_is_never_the_management_port(tmp_path: Path) -> None:
    node = LocalRabbit(tmp_path, port=5672, management_port=15672)

    assert node.dist_port not in (5672, 15672)
    assert node._env()["RABBITMQ_DIST_PORT"] == str(node.dist_port)


def test_an_explicit_distribution_port_is_kept(tmp_path: Path) -> None:
    assert LocalRabbit(tmp_path, port=5672, dist_port=25673).dist_port == 25673


def test_the_install_denies_service_starts_and_cleans_up_after_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy-rc.d"
    monkeypatch.setattr(rabbit, "POLICY_RC_D", policy)

    with rabbit._services_not_started():
        assert policy.read_text().rstrip().endswith("exit 101")
        assert policy.stat().st_mode & 0o111

    assert not policy.exists()


def test_an_existing_policy_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    monkeypatch.setattr(rabbit, "POLICY_RC_D", policy)

    with rabbit._services_not_started():
        pass

    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_installing_never_kills_other_brokers() -> None:
    source = Path(rabbit.__file__).read_text()
    assert "pkill" not in source and "killall" not in source
