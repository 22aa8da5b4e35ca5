"""docker-compose.yml and the Dockerfile describe every process (no Docker engine needed):
the default stack, and the profile ``ha`` (docs/deployment.md)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
PROCESSES = ("gateway", "presence", "chat", "calls", "help")
SERVICES = ("presence", "chat", "calls", "help")
COMPOSE_SCHEMA = REPO / "tests" / "support" / "compose_spec" / "compose-spec.json"
RABBIT_NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def _profile(name: str | None) -> dict[str, dict[str, Any]]:
    """The services of profile ``name`` (None: those that run without a profile)."""
    return {
        service: spec
        for service, spec in _compose()["services"].items()
        if (name in spec["profiles"] if "profiles" in spec else name is None)
    }


def test_the_file_follows_the_compose_specification() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    compose = _compose()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    # and the schema does catch a mistake
    broken = copy.deepcopy(compose)
    broken["services"]["ha-chat"]["deploy"]["replica"] = 2
    assert not validator.is_valid(broken)


def test_every_process_is_a_service_with_its_module() -> None:
    services = _profile(None)
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


# ---- profile ha: the production topology ------------------------------------------------------


def test_the_ha_profile_is_the_whole_topology_beside_the_default_stack() -> None:
    ha = _profile("ha")
    assert set(ha) == {*RABBIT_NODES, "postgres", "lb", *(f"ha-{p}" for p in PROCESSES)}
    for name, spec in ha.items():
        assert spec["profiles"] == ["ha"], name
        # nothing of the default stack: `--profile ha up` runs both side by side
        assert "rabbitmq" not in spec.get("depends_on", {}), name
        for volume in spec.get("volumes", []):
            assert volume.split(":")[0] not in {"rabbitmq-data", *(f"{s}-data" for s in SERVICES)}
    # nor a host port of the default stack
    published = [
        re.sub(r"\$\{[A-Z_]+:-(\d+)\}", r"\1", port).rsplit(":", 1)[0]
        for spec in _compose()["services"].values()
        for port in spec.get("ports", [])
    ]
    assert len(published) == len(set(published)) == 4, published


def test_variables_only_the_ha_profile_needs_are_not_required_in_the_default_one() -> None:
    # compose interpolates every service, whichever profile runs: a `${X:?}` of the ha profile
    # would stop a plain `docker compose up` that lacks X
    text = (REPO / "docker-compose.yml").read_text()
    for variable in (
        "IM_ERLANG_COOKIE",
        "IM_DB_PASSWORD",
        "IM_DB_USER",
        "IM_LB_PORT",
        "IM_HA_MANAGEMENT_PORT",
    ):
        assert variable in text
        assert f"${{{variable}:?" not in text, variable


def test_three_rabbitmq_nodes_form_one_cluster() -> None:
    ha = _profile("ha")
    conf = (REPO / "deploy" / "rabbitmq.conf").read_text()
    settings = dict(
        (key.strip(), value.strip())
        for key, value in (line.split("=", 1) for line in conf.splitlines() if "=" in line)
        if not key.lstrip().startswith("#")
    )
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    peers = {v for k, v in settings.items() if k.startswith("cluster_formation.classic_config.")}
    assert peers == {f"rabbit@{node}" for node in RABBIT_NODES}
    cookies = set()
    for node in RABBIT_NODES:
        spec = ha[node]
        assert spec["image"].startswith("rabbitmq:") and spec["hostname"] == node
        assert any(v.startswith("./deploy/rabbitmq.conf:/etc/rabbitmq/") for v in spec["volumes"])
        assert any(v.endswith(":/var/lib/rabbitmq") for v in spec["volumes"]), "its own data"
        assert "healthcheck" in spec
        cookies.add(spec["environment"]["RABBITMQ_ERLANG_COOKIE"])
        for port in spec.get("ports", []):
            assert port.startswith("127.0.0.1:") and not port.endswith(":5672"), port
    assert cookies == {"${IM_ERLANG_COOKIE:-}"}, "one shared cookie"
    # the first node forms the cluster, the others join it once it is up
    for node in RABBIT_NODES[1:]:
        assert ha[node]["depends_on"]["rabbitmq-1"]["condition"] == "service_healthy"


def test_postgres_has_a_database_for_every_service() -> None:
    postgres = _profile("ha")["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "healthcheck" in postgres and "pg_isready" in postgres["healthcheck"]["test"]
    (init,) = [v for v in postgres["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    script = (REPO / init.split(":")[0]).read_text()
    for service in SERVICES:
        assert f"CREATE DATABASE {service};" in script


def test_the_load_balancer_sends_to_healthy_gateways_only() -> None:
    ha = _profile("ha")
    lb, gateway = ha["lb"], ha["ha-gateway"]
    assert lb["image"].startswith("haproxy:")
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert lb["depends_on"]["ha-gateway"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(gateway["healthcheck"]["test"])
    assert "ports" not in gateway, "clients reach the gateways through the load balancer only"
    config = (REPO / "deploy" / "haproxy.cfg").read_text()
    assert "bind :8000" in config and any(p.endswith(":8000") for p in lb["ports"])
    backends = config.split("\nbackend ")[1:]
    assert len(backends) == 2
    for backend in backends:
        assert "option httpchk GET /readyz" in backend
        assert re.search(r"server-template \S+ \S+ ha-gateway:8000 ", backend), backend
    plain, sticky = backends
    assert "balance leastconn" in plain
    assert "cookie im_gateway insert" in sticky and "balance source" in sticky
    assert "use_backend gateways_sticky if { path_beg /socket.io/ }" in config
    assert re.search(r"timeout tunnel (\d+)h", config), "WebSockets live for hours"


def test_every_process_has_two_replicas_on_the_cluster_and_postgres() -> None:
    ha = _profile("ha")
    for process in PROCESSES:
        spec = ha[f"ha-{process}"]
        assert spec["command"] == ["python", "-m", f"services.{process}"]
        assert spec["deploy"]["replicas"] == 2, process
        assert "healthcheck" in spec
        env = spec["environment"]
        assert "IM_AMQP_URL" not in env, "the cluster, not one node"
        urls = env["IM_AMQP_URLS"].split(",")
        assert [re.sub(r".*@", "", url) for url in urls] == [
            f"{node}:5672/" for node in RABBIT_NODES
        ]
        assert all(url.startswith("amqp://${IM_BROKER_USER:?") for url in urls)
        assert "${IM_JWT_SECRET:?" in env["IM_JWT_SECRET"]
        # gateways and chat agree on chat's partitions; the replicas know how many share them
        assert (env["IM_CHAT_PARTITIONS"], env["IM_REPLICAS"]) == (
            "8",
            str(spec["deploy"]["replicas"]),
        )
        for node in RABBIT_NODES:
            assert spec["depends_on"][node]["condition"] == "service_healthy"
    for service in SERVICES:
        spec = ha[f"ha-{service}"]
        url = spec["environment"][f"IM_{service.upper()}_DB_URL"]
        assert url.startswith("postgresql+asyncpg://") and url.endswith(f"@postgres:5432/{service}")
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_rabbitmq_node_may_open_as_many_files_as_rabbitmq_asks_for() -> None:
    compose = _compose()["services"]
    nodes = [name for name, spec in compose.items() if "rabbitmq" in str(spec.get("image", ""))]
    assert len(nodes) == 4, nodes  # the default stack's and the cluster's three
    for name in nodes:
        assert compose[name]["ulimits"]["nofile"] >= 65_536, name
