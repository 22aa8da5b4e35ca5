"""The content of ``GET /api/help/templates``: every quick action belongs to a subject, every
urgency has a colour."""

from __future__ import annotations

from typing import Any

from services.gateway.help_templates import help_templates


def test_templates() -> None:
    templates: dict[str, Any] = help_templates()
    assert templates["subjects"] == ["Math", "Programming", "Science", "General"]
    assert [u["value"] for u in templates["urgencies"]] == ["low", "medium", "high"]
    assert all(u["color"].startswith("#") for u in templates["urgencies"])
    assert {q["subject"] for q in templates["quick_actions"]} == set(templates["subjects"])
    assert templates["default_urgency"] in {u["value"] for u in templates["urgencies"]}
