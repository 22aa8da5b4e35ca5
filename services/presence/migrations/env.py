"""Alembic's entry point for the presence service's schema (see shared.migrations)."""

from services.presence.store import metadata
from shared.migrations import run_env

run_env(metadata)
