"""The calls service's schema migrations (Alembic; see shared.migrations)."""
