"""Alembic's entry point for the help service's schema (see shared.migrations)."""

from services.help.tables import metadata
from shared.migrations import run_env

run_env(metadata)
