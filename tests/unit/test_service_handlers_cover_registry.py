"""Every client event the registry routes to a service has a handler there, and every fact a
service follows has one too (a missing one would answer ``internal`` at run time)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from shared.protocol.registry import CLIENT_EVENTS, SERVICES
from shared.settings import Settings


@pytest.mark.parametrize("service", SERVICES)
def test_every_routed_event_and_followed_fact_has_a_handler(service: str, tmp_path: Path) -> None:
    build = importlib.import_module(f"services.{service}.service").build
    definition = build(Settings(data_dir=tmp_path))
    routed = {name for name, spec in CLIENT_EVENTS.items() if spec.service == service}
    assert routed, "the registry routes events to every service"
    assert routed <= set(definition.handlers), routed - set(definition.handlers)
    assert set(definition.facts) <= set(definition.handlers)
