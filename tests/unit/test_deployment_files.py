"""docker-compose.yml and the Dockerfile describe every process (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROCESSES = ("gateway", "presence", "chat", "calls", "help")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_every_process_is_a_service_with_its_module() -> None:
    services = _compose()["services"]
    assert set(services) == {"rabbitmq", *PROCESSES}
    for name in PROCESSES:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert (REPO / "services" / name / "__main__.py").exists(), name
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert "healthcheck" in services[name]


def test_every_process_reaches_the_broker_and_shares_the_secret() -> None:
    services = _compose()["services"]
    for name in PROCESSES:
        env = services[name]["environment"]
        assert env["IM_AMQP_URL"].startswith("amqp://") and "@rabbitmq:5672" in env["IM_AMQP_URL"]
        assert "IM_JWT_SECRET" in env


def test_stateful_services_keep_their_data_in_named_volumes() -> None:
    compose = _compose()
    for name in ("presence", "chat", "calls", "help"):
        (volume,) = compose["services"][name]["volumes"]
        assert volume.split(":")[0] in compose["volumes"]
        assert volume.endswith(":/data")
    assert "gateway" not in {v.split(":")[0] for v in compose["volumes"]}, "gateways are stateless"


def test_dockerfile_installs_the_project() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    for folder in ("shared", "services"):
        assert f"COPY {folder}" in dockerfile


def test_the_broker_is_not_open_to_anyone() -> None:
    compose = _compose()["services"]
    broker = compose["rabbitmq"]
    assert "${IM_BROKER_USER:?" in broker["environment"]["RABBITMQ_DEFAULT_USER"]
    assert "${IM_BROKER_PASSWORD:?" in broker["environment"]["RABBITMQ_DEFAULT_PASS"]
    for port in broker.get("ports", []):
        assert port.startswith("127.0.0.1:") and not port.endswith(":5672"), port
    for name in PROCESSES:
        assert "guest" not in compose[name]["environment"]["IM_AMQP_URL"]
        assert "${IM_JWT_SECRET:?" in compose[name]["environment"]["IM_JWT_SECRET"]


def test_service_health_checks_need_no_tools_the_image_lacks() -> None:
    compose = _compose()["services"]
    for name in PROCESSES:
        check = " ".join(compose[name]["healthcheck"]["test"])
        assert "pgrep" not in check and "python" in check, name
