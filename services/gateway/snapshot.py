"""The gateway's read-only copy of every mentor's public status (PROTOCOL §5).

Every gateway receives every ``mentor_status_update`` broadcast anyway; keeping the latest
per mentor lets it greet a student with ``mentor_status_snapshot`` itself, with no round
trip to presence per connect (the way Phoenix replicates presence to every node). Presence
still owns the rules: this only stores what presence broadcast, and is filled from
presence's ``get_mentors`` when the gateway starts and after every broker reconnect (a
broadcast may have been missed meanwhile). Until then it is not ``ready`` and presence sends
the snapshot as before.

Views are merged by ``updated_at`` (ISO-8601 UTC, so text order is time order): a stale
broadcast from another presence replica never replaces a newer one.
"""

from __future__ import annotations

from typing import Any

from shared.protocol.envelope import dumps, fit, loads, push_frame
from shared.protocol.presence import MentorStatusSnapshot, MentorStatusUpdate, listing_order

STATUS_UPDATE = MentorStatusUpdate.EVENT


class MentorSnapshot:
    def __init__(self) -> None:
        self._views: dict[str, dict[str, Any]] = {}
        self._frame: str | None = None
        self.ready = False

    def invalidate(self) -> None:
        """Broadcasts may have been missed (broker reconnect): not served until reloaded."""
        self.ready = False

    def load(self, views: list[dict[str, Any]]) -> None:
        """Presence's full list (``get_mentors``), merged with what arrived meanwhile."""
        for view in views:
            self._merge(view)
        self.ready = True

    def observe(self, event: str | None, data: Any) -> None:
        """A broadcast push went by: keep it if it is a newer mentor status."""
        if event == STATUS_UPDATE and isinstance(data, dict):
            self._merge(data)

    def observe_frame(self, text: str) -> None:
        if f'"{STATUS_UPDATE}"' in text:  # most broadcasts are not statuses: skip the parse
            frame = loads(text)
            if isinstance(frame, dict):
                self.observe(frame.get("event"), frame.get("data"))

    def frame(self) -> str | None:
        """The ``mentor_status_snapshot`` frame, serialized once per change; None until ready."""
        if not self.ready:
            return None
        if self._frame is None:
            mentors = fit(listing_order(list(self._views.values())))
            self._frame = dumps(push_frame(MentorStatusSnapshot.EVENT, {"mentors": mentors}))
        return self._frame

    def _merge(self, view: dict[str, Any]) -> None:
        mentor_id, updated_at = view.get("mentor_id"), view.get("updated_at")
        if not isinstance(mentor_id, str) or not isinstance(updated_at, str):
            return
        known = self._views.get(mentor_id)
        if known is None or str(known.get("updated_at", "")) <= updated_at:
            self._views[mentor_id] = view
            self._frame = None
