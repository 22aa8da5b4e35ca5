"""The data of ``GET /api/help/templates``: subjects, urgencies (with colours) and quick-action
texts. Pure data, no I/O. It lives in :mod:`shared.protocol.help` (``help_templates()``) so
the gateway can serve it without a round trip (the gateway must not import ``services.*``);
this service answers the internal ``help_templates`` command with the same value.
"""

from __future__ import annotations

from typing import Any

from shared.protocol.help import HELP_TEMPLATES, help_templates

__all__ = ["HELP_TEMPLATES", "templates"]


def templates() -> dict[str, Any]:
    return help_templates()
