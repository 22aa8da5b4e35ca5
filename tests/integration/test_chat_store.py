"""Chat's store on a real database, SQLite and PostgreSQL (no broker): batched writes, the reads
behind history, the conversation list and the catch-up, and two writers sharing a database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.chat import domain
from services.chat.domain import Draft, Markers, Message, Receipt, Sent, StatusChange, Target
from services.chat.store import ChatStore
from services.chat.writer import GroupWriter
from services.chat.writes import ChangeOp, ReceiptOp, SendOp
from shared.errors import Conflict, Forbidden, InvalidPayload, NotFound
from tests.support.postgres import Databases

DAY = 86_400.0


@pytest.fixture
async def store(databases: Databases) -> AsyncIterator[ChatStore]:
    opened = ChatStore(databases.url("chat"))
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()


def send(sender: str, recipient: str, text: str = "hi", key: str | None = None) -> SendOp:
    return SendOp(Draft(sender, sender.title(), domain.target(sender, recipient, None), text, key))


async def test_a_batch_numbers_stores_and_dedupes(store: ChatStore) -> None:
    ab = domain.conversation_id_for("alice", "bob")
    first = await store.apply([send("alice", "bob", "1", "k1"), send("bob", "alice", "2")])
    again = await store.apply(
        [send("alice", "bob", "1", "k1"), send("alice", "bob", "3"), send("alice", "carol", "x")]
    )
    sent = [o for o in first + again if isinstance(o, Sent)]
    assert [(o.message.text, o.message.seq, o.created) for o in sent] == [
        ("1", 1, True),
        ("2", 2, True),
        ("1", 1, False),
        ("3", 3, True),
        ("x", 1, True),
    ]
    assert sent[2].message == sent[0].message  # the stored row is the truth
    rows, _ = await store.history(ab, None, 10)
    assert [m.seq for m in rows] == [3, 2, 1]


async def test_a_redelivered_command_is_stored_once(store: ChatStore) -> None:
    target = domain.target("alice", "bob", None)
    op = SendOp(Draft("alice", "Alice", target, "no client_msg_id", command_id="cmd-1"))
    first, again = await store.apply([op]), await store.apply([op])
    assert isinstance(first[0], Sent) and first[0].created
    assert again == [Sent(first[0].message, created=False)]
    rows, _ = await store.history(target.conversation_id, None, 10)
    assert len(rows) == 1


async def test_refusals_leave_nothing_behind(store: ChatStore) -> None:
    await store.apply([send("alice", "bob")])
    ab = domain.conversation_id_for("alice", "bob")
    outcomes = await store.apply(
        [
            SendOp(Draft("eve", "Eve", Target(ab), "sneaky")),
            ReceiptOp(ab, "eve", Receipt.READ, 1),
            ReceiptOp(ab, "bob", Receipt.READ, 2),
            ReceiptOp("dm_nope", "alice", Receipt.READ, 1),
            ReceiptOp(ab, "bob", Receipt.DELIVERED, 1),
        ]
    )
    expected = [NotFound, NotFound, InvalidPayload, NotFound, StatusChange]
    assert [type(o) for o in outcomes] == expected
    rows, markers = await store.history(ab, None, 10)
    assert [m.text for m in rows] == ["hi"] and markers == {"bob": Markers(1, 0)}


async def test_overview_catch_up_and_sync_reads(store: ChatStore) -> None:
    ab = domain.conversation_id_for("alice", "bob")
    ac = domain.conversation_id_for("alice", "carol")
    await store.apply([send("bob", "alice", f"b{i}") for i in range(3)])
    await store.apply([send("carol", "alice", "c0"), send("alice", "carol", "a0")])
    await store.apply(
        [ReceiptOp(ab, "alice", Receipt.READ, 1), ReceiptOp(ab, "alice", Receipt.DELIVERED, 2)]
    )
    overview = await store.overview("alice")
    assert [(c.id, last.text if last else None, unread) for c, last, _, unread in overview] == [
        (ac, "a0", 1),  # most recent first; alice's own message is not unread
        (ab, "b2", 2),
    ]
    assert overview[1][2] == {"alice": Markers(2, 1)}
    assert await store.overview("eve") == []
    late = 1e12
    waiting = (await store.undelivered({"alice", "nobody"}, late))["alice"]
    assert [(m.conversation_id, m.seq) for m in waiting] == sorted([(ab, 3), (ac, 1)])
    assert await store.undelivered({"alice"}, sent_before=0) == {}  # only what came before
    assert [(m.conversation_id, m.seq) for m in await store.after({ab: 1, ac: 0})] == sorted(
        [(ab, 2), (ab, 3), (ac, 1), (ac, 2)]
    )


async def test_two_writers_on_one_database_keep_seqs_gap_free(databases: Databases) -> None:
    url = databases.url("shared")
    replicas = [ChatStore(url), ChatStore(url)]
    await asyncio.gather(*(replica.start() for replica in replicas))  # both migrate at once
    writers = [GroupWriter(r.apply, max_batch=16) for r in replicas]
    tasks = [asyncio.create_task(w.run()) for w in writers]
    try:
        futures = [
            writers[i % 2].submit(send(*(("alice", "bob") if i % 3 else ("bob", "alice"))))
            for i in range(400)
        ]
        outcomes = await asyncio.gather(*futures)
    finally:
        for task in tasks:
            task.cancel()
    seqs = sorted(o.message.seq for o in outcomes)
    assert seqs == list(range(1, 401))
    assert all(w.batches < 200 for w in writers), "writes were not grouped"
    for replica in replicas:
        await replica.close()


async def test_the_largest_seqs_the_protocol_allows_are_answered(store: ChatStore) -> None:
    """PROTOCOL allows seqs up to 2^53 in requests: past the seq column's 32 bits on
    PostgreSQL, where they must still just find nothing, as on SQLite."""
    await store.apply([send("alice", "bob")])
    ab = domain.conversation_id_for("alice", "bob")
    rows, _ = await store.history(ab, 2**53, 10)
    assert [m.seq for m in rows] == [1]
    assert await store.after({ab: 2**53}) == []
    [refused] = await store.apply([ReceiptOp(ab, "bob", Receipt.READ, 2**53)])
    assert isinstance(refused, InvalidPayload)


async def test_text_with_nul_is_stored_and_found_as_it_was(store: ChatStore) -> None:
    """The protocol allows NUL in any string; PostgreSQL stores none in text (shared.dbtypes)."""
    odd = "a\x00b\ue000\ue001"
    op = SendOp(Draft("alice", "Al\x00ice", domain.target("alice", "bob", None), odd, "k\x00"))
    [first], [again] = await store.apply([op]), await store.apply([op])
    assert isinstance(first, Sent) and isinstance(again, Sent) and not again.created
    rows, _ = await store.history(first.message.conversation_id, None, 10)
    assert rows == [first.message] == [again.message]
    assert (rows[0].text, rows[0].sender_name, rows[0].client_msg_id) == (odd, "Al\x00ice", "k\x00")
    assert await store.history("dm_\x00", None, 10) == ([], {})


def edit(ab: str, mid: str, user: str, text: str) -> ChangeOp:
    return ChangeOp(ab, mid, lambda c, m, at: domain.edit(c, m, user, (ab, mid), text, at, DAY))


def delete(ab: str, mid: str, user: str) -> ChangeOp:
    return ChangeOp(ab, mid, lambda c, m, at: domain.delete(c, m, user, (ab, mid), at))


async def test_edits_and_deletes_are_stored_and_shown_in_history(store: ChatStore) -> None:
    ab = domain.conversation_id_for("alice", "bob")
    [sent, _] = await store.apply([send("alice", "bob", "helo"), send("bob", "alice", "hi")])
    assert isinstance(sent, Sent)
    mid = sent.message.id
    [edited] = await store.apply([edit(ab, mid, "alice", "hello")])
    assert isinstance(edited, Message) and edited.text == "hello" and edited.edited_at is not None
    refused = await store.apply([edit(ab, mid, "bob", "mine"), delete(ab, "nope", "alice")])
    assert [type(r) for r in refused] == [Forbidden, NotFound]
    rows, _ = await store.history(ab, None, 10)
    assert [(m.seq, m.text, m.edited_at) for m in rows][1] == (1, "hello", edited.edited_at)

    [deleted] = await store.apply([delete(ab, mid, "alice")])
    [again] = await store.apply([delete(ab, mid, "alice")])
    assert isinstance(deleted, Message) and again == deleted and deleted.deleted_at is not None
    [late] = await store.apply([edit(ab, mid, "alice", "undo")])
    assert isinstance(late, Conflict)
    rows, _ = await store.history(ab, None, 10)
    assert [(m.seq, m.text, m.deleted_at) for m in rows] == [
        (2, "hi", None),
        (1, "", deleted.deleted_at),  # the seq stays, the text is gone
    ]


async def test_messages_are_stamped_by_the_store_s_clock(databases: Databases) -> None:
    stamped = ChatStore(databases.url("chat"), clock=lambda: 1_234.5)
    await stamped.start()
    try:
        [sent] = await stamped.apply([send("alice", "bob")])
        assert isinstance(sent, Sent) and sent.message.sent_at == 1_234.5
    finally:
        await stamped.close()
