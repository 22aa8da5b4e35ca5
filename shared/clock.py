"""Time as the protocol writes it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    """Epoch seconds → ISO 8601 UTC with milliseconds, e.g. ``2026-11-29T14:00:00.000Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
