"""Settings that protect a deployment from its own defaults."""

from __future__ import annotations

from pathlib import Path

from pytest import MonkeyPatch

from shared.settings import Settings


def test_dev_mode_listens_on_this_machine_only() -> None:
    assert Settings(dev_mode=True).gateway_host == "127.0.0.1"


def test_dev_mode_keeps_an_explicit_host() -> None:
    assert Settings(dev_mode=True, gateway_host="0.0.0.0").gateway_host == "0.0.0.0"


def test_production_listens_everywhere_by_default() -> None:
    assert Settings(dev_mode=False).gateway_host == "0.0.0.0"


def test_a_guessable_token_secret_is_refused_outside_dev_mode() -> None:
    from shared.settings import DEV_JWT_SECRET

    assert Settings(dev_mode=False, jwt_secret=DEV_JWT_SECRET).jwt_secret_problem()
    assert Settings(dev_mode=False, jwt_secret="x" * 31).jwt_secret_problem()
    assert Settings(dev_mode=False, jwt_secret="x" * 32).jwt_secret_problem() is None
    assert Settings(dev_mode=True, jwt_secret=DEV_JWT_SECRET).jwt_secret_problem() is None


def test_each_service_has_its_own_database_url_and_pool_size(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setenv("IM_CHAT_DB_URL", "postgresql+asyncpg://u@db/chat")
    monkeypatch.setenv("IM_CHAT_DB_POOL_SIZE", "12")
    settings = Settings(data_dir=Path("/srv/im"))
    assert settings.db_url("chat") == "postgresql+asyncpg://u@db/chat"
    assert settings.db_url("help") == "sqlite+aiosqlite:////srv/im/help.db"
    assert settings.db_pool_size("chat") == 12
    assert {settings.db_pool_size(s) for s in ("presence", "calls", "help")} == {5}
