"""Presence: which users are connected, and each mentor's status (PROTOCOL §5)."""
