"""Which pushes travel together, and which may go out at the same time (pure, no I/O).

A handler's pushes reach each destination in the order it made them. Two rules keep that
while publishing fewer messages and not waiting for one publish before the next:
* consecutive pushes of the same frame to different users become one push to all of them
  (:func:`merge_same_frames`);
* pushes that share no destination may be published concurrently; those that share one are
  published in order (:func:`in_order_groups`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.runtime.outbox import ConnectionClose, ConnectionPush, Push, UserPush, UserSpread

BROADCAST = "all"


def merge_same_frames(pushes: list[Push]) -> list[Push]:
    """Consecutive user pushes of one frame (the same data object) become one push to all of
    their users, when at most one of them excludes a connection (ids are unique, so that
    exclusion can apply to all)."""
    merged: list[Push] = []
    for push in pushes:
        last = merged[-1] if merged else None
        if (
            isinstance(push, UserPush)
            and isinstance(last, UserPush)
            and _same_frame(push.frame, last.frame)
            and push.followup == last.followup
            and (push.exclude_connection is None or last.exclude_connection is None)
        ):
            merged[-1] = replace(
                last,
                also_to=(*last.also_to, push.user_id, *push.also_to),
                exclude_connection=last.exclude_connection or push.exclude_connection,
            )
        else:
            merged.append(push)
    return merged


def _same_frame(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same event with the same data *object* (a handler pushing one view to several
    users); equal-looking data made separately is not merged (cheap, and never wrong)."""
    return a is b or (a.get("event") == b.get("event") and a.get("data") is b.get("data"))


def in_order_groups(pushes: list[Push]) -> list[list[Push]]:
    """Pushes split into groups that may go out concurrently: two pushes that share a
    destination are in one group, in the order given."""
    groups: list[tuple[set[str], list[Push]]] = []
    for push in pushes:
        keys = _destinations(push)
        overlapping = [group for group in groups if _overlap(group[0], keys)]
        if not overlapping:
            groups.append((set(keys), [push]))
            continue
        into = overlapping[0]
        for other in overlapping[1:]:  # they share nothing with each other: any order
            into[0].update(other[0])
            into[1].extend(other[1])
            groups.remove(other)
        into[0].update(keys)
        into[1].append(push)
    return [group[1] for group in groups]


def _overlap(a: set[str], b: set[str]) -> bool:
    """A broadcast reaches every connection, so it shares a destination with every push."""
    return bool(a & b) or BROADCAST in a or BROADCAST in b


def _destinations(push: Push) -> set[str]:
    if isinstance(push, UserPush):
        return {f"user:{u}" for u in (push.user_id, *push.also_to)}
    if isinstance(push, ConnectionPush | ConnectionClose):
        return {f"connection:{push.connection_id}"}
    if isinstance(push, UserSpread):
        return {f"spread:{push.reply_to}:{push.user_id}"}
    return {BROADCAST}
