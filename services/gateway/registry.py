"""The connections a gateway holds, by id and by user, and each user's rate budget here."""

from __future__ import annotations

from collections.abc import Iterator

from services.gateway import metrics
from services.gateway.connections import Connection
from services.gateway.ratelimit import TokenBucket


class Registry:
    """Connections by id and by user, kept in step with the gauges."""

    def __init__(self, user_rate_per_s: float = 60.0, user_burst: int = 120) -> None:
        self._by_id: dict[str, Connection] = {}
        self._by_user: dict[str, set[Connection]] = {}
        self._user_limiters: dict[str, TokenBucket] = {}
        self._budget = (user_rate_per_s, user_burst)
        self._spread: dict[str, int] = {}  # user → gateways holding their sockets, when > 1

    def user_limiter(self, user_id: str) -> TokenBucket:
        """The rate budget of ``user_id`` over all their connections here (kept while they
        have one, so reconnecting does not refill it): their share of the budget."""
        limiter = self._user_limiters.get(user_id)
        if limiter is None:
            limiter = self._user_limiters[user_id] = TokenBucket(*self._share_of(user_id))
        return limiter

    def spread_over(self, user_id: str, gateways: int) -> None:
        """Presence's word: the user's sockets are on ``gateways`` gateways. Each of them lets
        the user spend 1/gateways of the budget, so that all together stay within it."""
        if user_id not in self._by_user:
            return  # gone from here meanwhile
        if gateways > 1:
            self._spread[user_id] = gateways
        else:
            self._spread.pop(user_id, None)
        limiter = self._user_limiters.get(user_id)
        if limiter is not None:
            limiter.resize(*self._share_of(user_id))

    def _share_of(self, user_id: str) -> tuple[float, int]:
        rate, burst = self._budget
        gateways = self._spread.get(user_id, 1)
        return rate / gateways, max(1, burst // gateways)

    def add(self, connection: Connection) -> None:
        self._by_id[connection.id] = connection
        self._by_user.setdefault(connection.user_id, set()).add(connection)
        self._update_gauges()

    def remove(self, connection: Connection) -> None:
        self._by_id.pop(connection.id, None)
        siblings = self._by_user.get(connection.user_id)
        if siblings is not None:
            siblings.discard(connection)
            if not siblings:
                del self._by_user[connection.user_id]
                self._user_limiters.pop(connection.user_id, None)
                self._spread.pop(connection.user_id, None)
        self._update_gauges()

    def _update_gauges(self) -> None:
        metrics.CONNECTIONS.set(len(self._by_id))
        metrics.USERS.set(len(self._by_user))

    def get(self, connection_id: str) -> Connection | None:
        return self._by_id.get(connection_id)

    def count_of(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    def of_user(self, user_id: str) -> frozenset[Connection]:
        return frozenset(self._by_user.get(user_id, ()))

    def has_user(self, user_id: str) -> bool:
        return user_id in self._by_user

    def users(self) -> list[str]:
        return list(self._by_user)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
