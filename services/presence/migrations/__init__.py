"""The presence service's schema migrations (Alembic; see shared.migrations)."""
