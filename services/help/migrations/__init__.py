"""The help service's schema migrations (Alembic; see shared.migrations)."""
