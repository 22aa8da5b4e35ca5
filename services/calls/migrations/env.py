"""Alembic's entry point for the calls service's schema (see shared.migrations)."""

from services.calls.store import metadata
from shared.migrations import run_env

run_env(metadata)
