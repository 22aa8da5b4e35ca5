"""The chat service's schema migrations (Alembic; see shared.migrations)."""
