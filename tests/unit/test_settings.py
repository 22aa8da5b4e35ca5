"""Settings that protect a deployment from its own defaults."""

from __future__ import annotations

from shared.settings import Settings


def test_dev_mode_listens_on_this_machine_only() -> None:
    assert Settings(dev_mode=True).gateway_host == "127.0.0.1"


def test_dev_mode_keeps_an_explicit_host() -> None:
    assert Settings(dev_mode=True, gateway_host="0.0.0.0").gateway_host == "0.0.0.0"


def test_production_listens_everywhere_by_default() -> None:
    assert Settings(dev_mode=False).gateway_host == "0.0.0.0"
