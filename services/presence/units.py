"""Steps that presence's units of work share: synchronous, on one :class:`PresenceTx` (in a
database thread), each noting in :class:`Changes` what it changed, for the effects the
handler decides back on the loop."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.presence import domain
from services.presence.domain import Mentor, UserPresence, spread_changes
from services.presence.store import PresenceTx
from shared.protocol.domain import ConnectionFact

MENTOR = "mentor"


@dataclass
class Changes:
    """What one unit of work changed, for the effects decided after it."""

    online: list[UserPresence] = field(default_factory=list)  # came online
    offline: list[UserPresence] = field(default_factory=list)  # grace expired
    graces: list[tuple[str, int]] = field(default_factory=list)  # (user, stamp) to arm
    mentors: list[tuple[Mentor | None, Mentor]] = field(default_factory=list)
    listing: list[Mentor] = field(default_factory=list)
    refused: list[ConnectionFact] = field(default_factory=list)  # over the cap: to be closed
    spreads: dict[str, set[str]] = field(default_factory=dict)  # user → gateways, if changed


def open_connections(
    tx: PresenceTx,
    opened: list[ConnectionFact],
    at: float,
    changes: Changes,
    *,
    cap: int,
    alive_since: float,
) -> None:
    """Record connections (those over the cap refused); users and mentors come online."""
    new = tx.add_connections(opened)
    changes.refused = over_the_cap(tx, new, cap, alive_since)
    if changes.refused:
        tx.remove_connections([f.connection_id for f in changes.refused])
        new = [f for f in new if f not in changes.refused]
    if not new:
        return
    roles = {f.user_id: f.role for f in new}
    before = tx.users(roles)
    after = {user_id: user.connected() for user_id, user in before.items()}
    tx.save_users(list(after.values()))
    changes.online += [after[u] for u, user in before.items() if not user.online]
    names = {f.user_id: f.name for f in new if f.role == MENTOR}
    known = tx.mentors_of(list(names))
    for mentor_id, name in names.items():
        stored = known.get(mentor_id)
        turned = domain.set_online(stored or Mentor(mentor_id, name), True, at, name=name)
        if domain.changed(stored, turned):
            tx.save_mentor(turned)
            changes.mentors.append((stored, turned))


def close_connections(tx: PresenceTx, connection_ids: list[str], changes: Changes) -> None:
    """Forget connections; a user left without any starts their reconnect grace."""
    users = set(tx.remove_connections(connection_ids).values())
    gone = [u for u, n in tx.connection_counts(users).items() if n == 0]
    if not gone:
        return
    advanced = [
        user.last_connection_closed() for user in tx.users(dict.fromkeys(gone, "")).values()
    ]
    tx.save_users([user for user, _ in advanced])
    changes.graces += [(user.user_id, stamp) for user, stamp in advanced]


def close_tracking_spread(tx: PresenceTx, connection_ids: list[str], changes: Changes) -> None:
    """:func:`close_connections`, noting users left on fewer gateways (their budget share)."""
    users = tx.users_of(connection_ids)
    before = tx.gateways_of(users)
    close_connections(tx, connection_ids, changes)
    changes.spreads = spread_changes(before, tx.gateways_of(users))


def over_the_cap(
    tx: PresenceTx, new: list[ConnectionFact], cap: int, alive_since: float
) -> list[ConnectionFact]:
    """The newest of ``new`` beyond ``cap`` connections of their user over all gateways heard
    from since ``alive_since`` (each gateway refuses what passes the cap on its own sockets
    at the handshake; presence sees the sum)."""
    users = {f.user_id for f in new}
    counts = tx.connection_counts(users, on_gateways_seen_since=alive_since)
    refused: list[ConnectionFact] = []
    for user_id, excess in ((u, n - cap) for u, n in counts.items() if n > cap):
        theirs = sorted((f for f in new if f.user_id == user_id), key=lambda f: f.at)
        refused += theirs[-excess:]
    return refused
