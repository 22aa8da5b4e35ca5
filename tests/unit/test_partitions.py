"""The partition of a chat command: the same for every way of naming one conversation, in
every process and run, and spread over the partitions."""

from __future__ import annotations

from collections import Counter

import pytest

from shared.errors import InvalidPayload
from shared.partitions import conversation_id_for, ordering_key, partition_of
from shared.settings import Settings


def test_both_users_and_both_names_of_a_conversation_have_one_key() -> None:
    cid = conversation_id_for("alice", "bob")
    assert cid == conversation_id_for("bob", "alice")
    keys = {
        ordering_key("alice", {"recipient_id": "bob", "text": "hi"}),
        ordering_key("bob", {"recipient_id": "alice"}),
        ordering_key("alice", {"conversation_id": cid, "up_to_seq": 3}),
        ordering_key("bob", {"recipient_id": "alice", "conversation_id": cid}),
    }
    assert keys == {cid}


def test_commands_about_no_conversation_follow_their_sender() -> None:
    assert (
        ordering_key("alice", {}) == ordering_key("alice", {"since": {}}) != ordering_key("bob", {})
    )
    assert ordering_key("alice", {}) != conversation_id_for("alice", "bob")


def test_a_wrongly_named_conversation_still_has_a_key() -> None:
    """The service refuses it; the gateway must only send it somewhere."""
    assert ordering_key("alice", {"recipient_id": "alice"}) == ordering_key("alice", {})
    with pytest.raises(InvalidPayload):
        conversation_id_for("alice", "alice")


def test_the_partition_is_the_same_in_every_process_and_run() -> None:
    # Fixed values: a change of the hash would split running conversations over two queues.
    assert conversation_id_for("alice", "bob") == "dm_1e2af26470aae83866fd22e2907b8d1b"
    assert partition_of(conversation_id_for("alice", "bob"), 8) == 5
    assert partition_of("user:alice", 8) == 7


def test_keys_spread_over_every_partition() -> None:
    counts = Counter(partition_of(conversation_id_for(f"u{i}", f"v{i}"), 8) for i in range(4000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 400, counts  # 500 each on average


def test_one_partition_takes_everything_and_zero_is_refused() -> None:
    assert {partition_of(f"k{i}", 1) for i in range(50)} == {0}
    with pytest.raises(ValueError):
        partition_of("k", 0)


def test_only_chat_is_partitioned_and_a_replica_index_must_fit() -> None:
    settings = Settings(chat_partitions=4)
    assert (settings.partitions("chat"), settings.partitions("calls")) == (4, 0)
    with pytest.raises(ValueError, match="IM_REPLICA_INDEX"):
        Settings(replicas=3, replica_index=3)
