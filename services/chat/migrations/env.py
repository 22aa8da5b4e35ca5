"""Alembic's entry point for the chat service's schema (see shared.migrations)."""

from services.chat.tables import metadata
from shared.migrations import run_env

run_env(metadata)
