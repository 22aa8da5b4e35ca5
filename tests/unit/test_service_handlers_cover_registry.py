"""Each service's table and the registries agree: every client event the registry routes to
a service has a command route there and every command route is a registry row (or a command
of the gateway's HTTP API); every fact route is a fact of ``FACTS``; a timer shares its name
with no client event or fact (a missing route would answer ``internal`` at run time)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from shared.protocol.domain import FACTS
from shared.protocol.registry import CLIENT_EVENTS, SERVICES
from shared.runtime.routes import Kind
from shared.runtime.service import ServiceDefinition
from shared.settings import Settings

# Commands the gateway's HTTP API sends (services/gateway/http.py), outside the registry.
HTTP_COMMANDS = {"calls": {"list_calls"}}


def definition_of(service: str, data_dir: Path) -> ServiceDefinition:
    build = importlib.import_module(f"services.{service}.service").build
    definition: ServiceDefinition = build(Settings(data_dir=data_dir))
    return definition


@pytest.mark.parametrize("service", SERVICES)
def test_every_registry_row_has_a_route_and_every_route_a_row(service: str, tmp_path: Path) -> None:
    table = definition_of(service, tmp_path).handlers
    by_kind = {kind: {n for n, r in table.items() if r.kind is kind} for kind in Kind}
    routed = {name for name, spec in CLIENT_EVENTS.items() if spec.service == service}
    assert routed, "the registry routes events to every service"
    assert by_kind[Kind.COMMAND] == routed | HTTP_COMMANDS.get(service, set())
    assert by_kind[Kind.FACT] <= set(FACTS)
    assert not by_kind[Kind.TIMER] & (set(CLIENT_EVENTS) | set(FACTS))
    for name in routed:
        assert table[name].model is CLIENT_EVENTS[name].payload, name
