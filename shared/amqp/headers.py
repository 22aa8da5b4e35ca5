"""What the gateway and the services tell each other beside a message's body.

* ``type``: :data:`REPLY` (an answer to a command, by ``correlation_id``), :data:`PUSH`,
  :data:`BATCH` (several commands of one gateway for one service: see
  :class:`shared.protocol.envelope.BatchedCommand`), or :data:`BUNDLE` (the pushes and
  replies of a batch's commands: see :meth:`shared.runtime.publisher.Publisher.bundle`).
* :data:`DEADLINE`: a command's deadline (epoch ms); a service drops it when late, because
  its sender has been told ``unavailable`` by then.
* :data:`ATTEMPTS`: how often a command was tried before, beside the broker's own
  ``x-delivery-count`` (a command of a batch that failed goes back to its queue alone).
* :data:`CONNECTION` / :data:`EXCLUDE`: a push for one connection only / for all but one.
* :data:`CLOSE_CODE`: with :data:`CONNECTION`, close that connection with this code (the
  body is the reason) instead of writing a frame.
* :data:`SPREAD_USER` / :data:`SPREAD_GATEWAYS`: to one gateway, over how many gateways
  that user's sockets are (their rate budget is split between them).
* :data:`REPLY_BODY`: the reply (with ``correlation_id``) carried by a push.
* :data:`REPEAT`: a push of a command run again (redelivered): a gateway that delivered the
  same frame lately drops it (see :mod:`services.gateway.repeats`).
* :data:`FOLLOWUP_KEY`, :data:`FOLLOWUP_AFTER_MS`, :data:`FOLLOWUP_FRAME`: see
  :class:`shared.runtime.outbox.Followup`.
"""

from __future__ import annotations

import time
from typing import Any

PUSH = "push"
REPLY = "reply"
BATCH = "batch"
BUNDLE = "bundle"

DEADLINE = "x-deadline"
ATTEMPTS = "x-attempts"
DELIVERY_COUNT = "x-delivery-count"  # set by a quorum queue on every redelivery
CONNECTION = "x-connection"
EXCLUDE = "x-exclude-connection"
CLOSE_CODE = "x-close-code"
SPREAD_USER = "x-spread-user"
SPREAD_GATEWAYS = "x-spread-gateways"
FOLLOWUP_KEY = "x-followup-key"
FOLLOWUP_AFTER_MS = "x-followup-after-ms"
FOLLOWUP_FRAME = "x-followup-frame"
REPLY_BODY = "x-reply"  # a reply riding on a push (see shared.runtime.publisher)
REPEAT = "x-repeat"


def epoch_ms() -> int:
    return int(time.time() * 1000)


def is_past_deadline(headers: dict[str, Any] | None, now_ms: int | None = None) -> bool:
    deadline = (headers or {}).get(DEADLINE)
    return isinstance(deadline, int) and deadline < (now_ms or epoch_ms())


def attempts(headers: dict[str, Any] | None) -> int:
    """How often the command of a message with these headers was tried before."""
    values = (headers or {}).get(DELIVERY_COUNT, 0), (headers or {}).get(ATTEMPTS, 0)
    return sum(value for value in values if isinstance(value, int))
