"""Facts that one process tells the others on the domain exchange (routing key = name).

They are not part of the client protocol; this is where their names and fields live.
"""

from __future__ import annotations

from pydantic import BaseModel

from shared.protocol.presence import MentorStatusView

CONNECTIONS_CHANGED = "gateway.connections_changed"
GATEWAY_HEARTBEAT = "gateway.heartbeat"
MENTOR_STATUS_CHANGED = "presence.mentor_status_changed"
CALL_ACCEPTED = "calls.call_accepted"
CALL_ENDED = "calls.call_ended"


class ConnectionFact(BaseModel):
    """A connection opened or closed on a gateway. ``at`` is the gateway's clock (epoch s)."""

    gateway_id: str
    connection_id: str
    user_id: str
    role: str
    name: str
    reply_to: str
    at: float
    resumed: bool = False  # re-announced after a broker reconnect: no catch-up needed
    # the gateway sent the mentor status snapshot itself (from its cache of the broadcasts)
    snapshot_sent: bool = False


class ConnectionsChanged(BaseModel):
    """The connections one gateway opened and closed within a few milliseconds, in one fact:
    a connect storm costs each service one unit of work per batch, not one per connection.
    A connection opened and closed within the same batch is in both lists."""

    opened: list[ConnectionFact] = []
    closed: list[ConnectionFact] = []


class GatewayHeartbeat(BaseModel):
    """A gateway is alive and holds exactly these connections (as of ``at``)."""

    gateway_id: str
    connection_ids: list[str]
    at: float


class CallFact(BaseModel):
    """A call between two users was accepted or has ended."""

    call_id: str
    caller_id: str
    receiver_id: str


USERS_ONLINE = "presence.users_online"
USERS_OFFLINE = "presence.users_offline"
SNAPSHOT_REQUESTED = "presence.snapshot_requested"
USERS_PER_FACT = 500  # a gateway's restart takes thousands offline in one unit of work


class UserPresenceFact(BaseModel):
    """A user got a first connection (online) or has had none for the reconnect grace."""

    user_id: str
    role: str


class UsersPresenceFact(BaseModel):
    """Users that came online, or went offline, in one unit of work of presence."""

    users: list[UserPresenceFact]


class SnapshotRequested(BaseModel):
    """A service asks presence to tell every mentor's state again (it rebuilds its view)."""

    requested_by: str


# Every fact and the model its data fits: a service that follows a fact gets it validated
# with this model (shared/runtime/routes.py).
FACTS: dict[str, type[BaseModel]] = {
    CONNECTIONS_CHANGED: ConnectionsChanged,
    GATEWAY_HEARTBEAT: GatewayHeartbeat,
    MENTOR_STATUS_CHANGED: MentorStatusView,
    CALL_ACCEPTED: CallFact,
    CALL_ENDED: CallFact,
    USERS_ONLINE: UsersPresenceFact,
    USERS_OFFLINE: UsersPresenceFact,
    SNAPSHOT_REQUESTED: SnapshotRequested,
}
