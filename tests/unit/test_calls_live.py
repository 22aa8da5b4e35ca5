"""call_signal's view of calls: read once, then from memory for a moment."""

from __future__ import annotations

from services.calls.domain import Call, CallState
from services.calls.live import LiveCalls


def _call(state: CallState = CallState.ACCEPTED) -> Call:
    return Call(
        call_id="c1",
        caller_id="alice",
        caller_name="Alice",
        caller_role="student",
        receiver_id="bob",
        call_type="audio",
        call_data=None,
        state=state,
        created_at=0.0,
        expires_at=30.0,
    )


async def test_a_burst_of_signals_reads_the_call_once_per_moment() -> None:
    reads: list[str] = []
    clock = [0.0]

    async def load(call_id: str) -> Call | None:
        reads.append(call_id)
        return _call()

    live = LiveCalls(load, fresh_for_s=1.0, clock=lambda: clock[0])
    for _ in range(50):
        assert (await live.get("c1")) == _call()
    assert reads == ["c1"]
    clock[0] = 1.5
    for _ in range(5):  # stale: served at once, one refresh behind it
        assert (await live.get("c1")) == _call()
    await live.refreshed()
    assert reads == ["c1", "c1"]


async def test_a_refresh_replaces_a_call_another_replica_ended() -> None:
    stored = [_call()]
    clock = [0.0]

    async def load(call_id: str) -> Call | None:
        return stored[0]

    live = LiveCalls(load, fresh_for_s=1.0, clock=lambda: clock[0])
    await live.get("c1")
    stored[0] = _call(CallState.ENDED)  # changed elsewhere
    clock[0] = 2.0
    assert (await live.get("c1")) == _call()  # stale, served while the refresh runs
    await live.refreshed()
    assert (await live.get("c1")) == _call(CallState.ENDED)


async def test_this_replicas_own_change_is_seen_at_once_and_unknown_calls_are_not_kept() -> None:
    async def load(call_id: str) -> Call | None:
        return _call() if call_id == "c1" else None

    live = LiveCalls(load, clock=lambda: 0.0)
    await live.get("c1")
    ended = _call(CallState.ENDED)
    live.remember(ended)
    assert await live.get("c1") == ended
    assert await live.get("nope") is None
