"""Partitions: how the commands that must keep their order find one consumer.

Chat numbers a conversation's messages in the order its replica starts their commands, so
every command about one conversation goes to the same partition of chat's durable queue, and
each partition has one active consumer at a time (``x-single-active-consumer``). The gateway
picks the partition of a command and the service consumes the partitions; both use these
functions, so they always agree (as long as both run with the same ``IM_CHAT_PARTITIONS``).

A conversation's id is a function of its two users, so a command naming the conversation by
the other user (``recipient_id``) and one naming it by id (``conversation_id``) have the same
key. A command about no conversation (``list_conversations``, ``sync``) is kept in order with
the other such commands of its sender.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidPayload

CONVERSATION_PREFIX = "dm_"
USER_PREFIX = "user:"  # cannot be a conversation id: those start with CONVERSATION_PREFIX


def conversation_id_for(a: str, b: str) -> str:
    """The one id of the direct conversation between ``a`` and ``b``: stable, opaque, the same
    whichever of them asks. (``:`` cannot occur in a user id, so the joined pair is unique.)"""
    if a == b:
        raise InvalidPayload("a conversation needs two different users")
    low, high = sorted((a, b))
    return CONVERSATION_PREFIX + hashlib.sha256(f"{low}:{high}".encode()).hexdigest()[:32]


def ordering_key(user_id: str, data: Mapping[str, Any]) -> str:
    """What a command of ``user_id`` keeps its order with: its conversation, by the other user
    or by id, else the sender's other commands about no conversation. Never raises: a command
    that names its conversation wrongly is refused by the service, whichever partition."""
    recipient_id = data.get("recipient_id")
    if isinstance(recipient_id, str) and recipient_id != user_id:
        return conversation_id_for(user_id, recipient_id)
    conversation_id = data.get("conversation_id")
    if isinstance(conversation_id, str):
        return conversation_id
    return USER_PREFIX + user_id


def partition_of(key: str, partitions: int) -> int:
    """The partition (``0 .. partitions - 1``) of ``key``: a stable hash, the same in every
    process and every run (Python's ``hash`` of a str is not)."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions
