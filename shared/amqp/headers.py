"""What the gateway and the services tell each other beside a message's body.

* ``type``: :data:`REPLY` (an answer to a command, by ``correlation_id``) or :data:`PUSH`.
* :data:`DEADLINE`: a command's deadline (epoch ms); a service drops it when late, because
  its sender has been told ``unavailable`` by then.
* :data:`CONNECTION` / :data:`EXCLUDE`: a push for one connection only / for all but one.
* :data:`CLOSE_CODE`: with :data:`CONNECTION`, close that connection with this code (the
  body is the reason) instead of writing a frame.
* :data:`SPREAD_USER` / :data:`SPREAD_GATEWAYS`: to one gateway, over how many gateways
  that user's sockets are (their rate budget is split between them).
* :data:`REPLY_BODY`: the reply (with ``correlation_id``) carried by a push.
* :data:`FOLLOWUP_KEY`, :data:`FOLLOWUP_AFTER_MS`, :data:`FOLLOWUP_FRAME`: see
  :class:`shared.runtime.outbox.Followup`.
"""

from __future__ import annotations

import time
from typing import Any

PUSH = "push"
REPLY = "reply"

DEADLINE = "x-deadline"
CONNECTION = "x-connection"
EXCLUDE = "x-exclude-connection"
CLOSE_CODE = "x-close-code"
SPREAD_USER = "x-spread-user"
SPREAD_GATEWAYS = "x-spread-gateways"
FOLLOWUP_KEY = "x-followup-key"
FOLLOWUP_AFTER_MS = "x-followup-after-ms"
FOLLOWUP_FRAME = "x-followup-frame"
REPLY_BODY = "x-reply"  # a reply riding on a push (see shared.runtime.publisher)


def epoch_ms() -> int:
    return int(time.time() * 1000)


def is_past_deadline(headers: dict[str, Any] | None, now_ms: int | None = None) -> bool:
    deadline = (headers or {}).get(DEADLINE)
    return isinstance(deadline, int) and deadline < (now_ms or epoch_ms())
