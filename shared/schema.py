"""What the services' table schemas share."""

from __future__ import annotations

# The width of an id column: user ids (shared.auth.USER_ID_PATTERN) and the ids of calls,
# conversations, messages and requests (shared.protocol.base.EntityId) are at most 64
# characters.
ID = 64
