"""Chat's rules without storage or broker: ids, authorization, seqs, idempotency, receipts."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from services.chat import domain, views
from services.chat.domain import (
    Conversation,
    Draft,
    Markers,
    Message,
    Receipt,
    Sent,
    Status,
    Target,
)
from shared.errors import Conflict, Forbidden, InvalidPayload, NotFound
from shared.protocol.chat import (
    ChatMessage,
    HistoryMessage,
    MessageDeleteAck,
    MessageDeleted,
    MessageEditAck,
    MessageEdited,
    MessageSent,
    MessageStatus,
)

AT = 1_700_000_000.0


def id_factory() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"m{next(counter)}"


def to(sender: str, recipient: str, text: str = "hi", key: str | None = None) -> Draft:
    return Draft(sender, sender.title(), domain.target(sender, recipient, None), text, key)


def into(sender: str, conversation_id: str, text: str = "hi", key: str | None = None) -> Draft:
    return Draft(sender, sender.title(), Target(conversation_id), text, key)


def sent(outcome: object) -> Message:
    assert isinstance(outcome, Sent), outcome
    return outcome.message


# -- conversation ids ------------------------------------------------------------------------


def test_conversation_id_is_the_same_for_both_participants_and_stable() -> None:
    first = domain.conversation_id_for("alice", "bob")
    assert first == domain.conversation_id_for("bob", "alice")
    assert first == domain.conversation_id_for("alice", "bob")
    assert first.startswith("dm_") and len(first) <= 64


def test_conversation_id_is_opaque_and_distinct_per_pair() -> None:
    pairs = [("alice", "bob"), ("alice", "carol"), ("ab", "c"), ("a", "bc"), ("bob", "carol")]
    found = {domain.conversation_id_for(a, b) for a, b in pairs}
    assert len(found) == len(pairs)
    assert all("alice" not in i and "bob" not in i for i in found)


def test_no_conversation_with_yourself() -> None:
    with pytest.raises(InvalidPayload):
        domain.conversation_id_for("alice", "alice")
    with pytest.raises(InvalidPayload):
        domain.target("alice", "alice", None)


def test_target_by_recipient_derives_the_id_and_must_agree_with_a_given_one() -> None:
    cid = domain.conversation_id_for("alice", "bob")
    assert domain.target("alice", "bob", None) == Target(cid, "bob")
    assert domain.target("alice", "bob", cid) == Target(cid, "bob")
    assert domain.target("alice", None, cid) == Target(cid, None)
    with pytest.raises(InvalidPayload):
        domain.target("alice", "bob", domain.conversation_id_for("alice", "carol"))


# -- authorization ---------------------------------------------------------------------------


def test_only_participants_see_a_conversation_and_outsiders_get_not_found() -> None:
    conversation = Conversation.between("alice", "bob", AT)
    assert domain.visible_to(conversation, "alice", conversation.id) is conversation
    assert domain.visible_to(conversation, "bob", conversation.id) is conversation
    with pytest.raises(NotFound) as outsider:
        domain.visible_to(conversation, "carol", conversation.id)
    with pytest.raises(NotFound) as unknown:
        domain.visible_to(None, "carol", conversation.id)
    assert outsider.value.message == unknown.value.message  # nothing tells them apart


def test_sending_by_conversation_id_needs_an_existing_conversation_you_are_in() -> None:
    conversation = Conversation.between("alice", "bob", AT)
    stored = {conversation.id: conversation}
    plan = domain.plan_sends(
        [into("carol", conversation.id), into("alice", "dm_unknown"), into("bob", conversation.id)],
        stored,
        {},
        AT,
        id_factory(),
    )
    assert isinstance(plan.outcomes[0], NotFound)
    assert isinstance(plan.outcomes[1], NotFound)
    assert sent(plan.outcomes[2]).seq == 1  # refused drafts took no seq
    assert sent(plan.outcomes[2]).recipient_id == "alice"
    assert [m.seq for m in plan.messages] == [1]


# -- seqs ------------------------------------------------------------------------------------


def test_seqs_follow_the_order_of_the_batch_per_conversation_without_gaps() -> None:
    ab = Conversation.between("alice", "bob", AT)
    stored = {ab.id: Conversation(ab.id, ab.user_a, ab.user_b, last_seq=7, updated_at=AT)}
    drafts = [
        to("alice", "bob", "1"),
        to("alice", "carol", "x"),
        to("bob", "alice", "2"),
        to("alice", "bob", "3"),
        to("carol", "alice", "y"),
    ]
    plan = domain.plan_sends(drafts, stored, {}, AT + 1, id_factory())
    messages = [sent(o) for o in plan.outcomes]
    expected = [("1", 8), ("x", 1), ("2", 9), ("3", 10), ("y", 2)]
    assert [(m.text, m.seq) for m in messages] == expected
    assert [m.recipient_id for m in messages] == ["bob", "carol", "alice", "bob", "alice"]
    assert len({m.id for m in messages}) == 5
    # rows to write: the counter moves from 7 to 10, the new conversation starts at 2
    assert [(b.last_seq, a.last_seq) for b, a in plan.advanced] == [(7, 10)]
    assert [(c.id, c.last_seq) for c in plan.new_conversations] == [
        (domain.conversation_id_for("alice", "carol"), 2)
    ]
    assert plan.messages == messages


def test_batches_continue_where_the_stored_counter_stands() -> None:
    new_id = id_factory()
    first = domain.plan_sends([to("alice", "bob")] * 3, {}, {}, AT, new_id)
    stored = {c.id: c for c in first.new_conversations}
    second = domain.plan_sends([to("bob", "alice")] * 2, stored, {}, AT, new_id)
    assert [m.seq for m in first.messages + second.messages] == [1, 2, 3, 4, 5]


# -- idempotency -----------------------------------------------------------------------------


def test_a_repeated_client_msg_id_returns_the_first_message_and_creates_nothing() -> None:
    first = domain.plan_sends([to("alice", "bob", "hello", key="k1")], {}, {}, AT, id_factory())
    original = sent(first.outcomes[0])
    stored = {c.id: c for c in first.new_conversations}
    again = domain.plan_sends(
        [to("alice", "bob", "hello (edited)", key="k1")],
        stored,
        {("client", "alice", "k1"): original},
        AT + 5,
        id_factory(),
    )
    assert again.outcomes == [Sent(original, created=False)]
    assert again.messages == [] and again.advanced == [] and again.new_conversations == []


def test_repeats_inside_one_batch_and_keys_are_per_sender() -> None:
    plan = domain.plan_sends(
        [to("alice", "bob", key="k"), to("alice", "bob", key="k"), to("bob", "alice", key="k")],
        {},
        {},
        AT,
        id_factory(),
    )
    first, repeat, other = plan.outcomes
    assert isinstance(first, Sent) and first.created
    assert repeat == Sent(first.message, created=False)
    assert isinstance(other, Sent) and other.created and other.message.seq == 2
    assert [m.seq for m in plan.messages] == [1, 2]


def test_messages_without_client_msg_id_are_never_merged() -> None:
    plan = domain.plan_sends([to("alice", "bob", "same")] * 2, {}, {}, AT, id_factory())
    assert all(isinstance(o, Sent) and o.created for o in plan.outcomes)
    assert len(plan.messages) == 2


def test_a_redelivered_command_returns_its_first_message_even_without_client_msg_id() -> None:
    target = domain.target("alice", "bob", None)
    draft = Draft("alice", "Alice", target, "no key", command_id="cmd-1")
    first = domain.plan_sends([draft], {}, {}, AT, id_factory())
    stored = sent(first.outcomes[0])
    assert stored.command_id == "cmd-1" and stored.keys == [("command", "alice", "cmd-1")]
    conversations = {c.id: c for c in first.new_conversations}
    redelivered = domain.plan_sends(
        [draft, Draft("alice", "Alice", target, "no key", command_id="cmd-2")],
        conversations,
        {key: stored for key in stored.keys},
        AT + 1,
        id_factory(),
    )
    assert redelivered.outcomes[0] == Sent(stored, created=False)
    assert sent(redelivered.outcomes[1]).seq == 2  # another command is another message
    # a client resend is a new command with the same client_msg_id: the client key decides
    keyed = Draft("alice", "Alice", target, "k", client_msg_id="k", command_id="cmd-3")
    resend = Draft("alice", "Alice", target, "k", client_msg_id="k", command_id="cmd-4")
    plan = domain.plan_sends([keyed, resend], conversations, {}, AT, id_factory())
    assert plan.outcomes[1] == Sent(sent(plan.outcomes[0]), created=False)


# -- receipts --------------------------------------------------------------------------------


def test_markers_only_move_forward_and_read_implies_delivered() -> None:
    m = Markers()
    m = m.advance(Receipt.DELIVERED, 3)
    assert m == Markers(3, 0)
    assert m.advance(Receipt.DELIVERED, 2) == m  # never back
    m = m.advance(Receipt.READ, 5)
    assert m == Markers(5, 5)  # read implies delivered
    assert m.advance(Receipt.READ, 4) == m
    assert m.advance(Receipt.DELIVERED, 5) == m
    assert Markers(9, 5).advance(Receipt.READ, 6) == Markers(9, 6)


def test_status_of_a_message_comes_from_its_recipients_markers() -> None:
    markers = Markers(delivered_seq=4, read_seq=2)
    assert [markers.status_of(s) for s in (1, 2, 3, 4, 5)] == [
        Status.READ,
        Status.READ,
        Status.DELIVERED,
        Status.DELIVERED,
        Status.SENT,
    ]
    conversation = Conversation.between("alice", "bob", AT)
    to_bob = Message("m1", conversation.id, 3, "alice", "Alice", "bob", "hi", AT)
    to_alice = Message("m2", conversation.id, 3, "bob", "Bob", "alice", "hi", AT)
    per_reader = {"bob": markers}
    assert domain.status_of(to_bob, per_reader) is Status.DELIVERED
    assert domain.status_of(to_alice, per_reader) is Status.SENT  # alice marked nothing


def test_a_receipt_tells_the_other_participant_only_when_something_moves() -> None:
    conversation = Conversation("dm_x", "alice", "bob", last_seq=6)
    after, change = domain.mark(conversation, "bob", Markers(), Receipt.DELIVERED, 4, AT)
    assert after == Markers(4, 0)
    assert change is not None
    assert (change.status, change.up_to_seq, change.by_user_id, change.to_user_id) == (
        Receipt.DELIVERED,
        4,
        "bob",
        "alice",
    )
    again, nothing = domain.mark(conversation, "bob", after, Receipt.DELIVERED, 3, AT)
    assert (again, nothing) == (after, None)
    read, change = domain.mark(conversation, "bob", after, Receipt.READ, 2, AT)
    assert read == Markers(4, 2) and change is not None and change.status is Receipt.READ
    assert change.up_to_seq == 2


def test_a_receipt_beyond_the_last_message_is_refused() -> None:
    conversation = Conversation("dm_x", "alice", "bob", last_seq=2)
    with pytest.raises(InvalidPayload):
        domain.mark(conversation, "bob", Markers(), Receipt.READ, 3, AT)


# -- history pages and wire shapes -----------------------------------------------------------


def test_a_history_page_is_ascending_and_says_whether_older_ones_remain() -> None:
    rows = [Message(f"m{s}", "dm_x", s, "a", "A", "b", "t", AT) for s in (9, 8, 7)]
    page, more = domain.page(rows, 2)
    assert [m.seq for m in page] == [8, 9] and more
    page, more = domain.page(rows, 3)
    assert [m.seq for m in page] == [7, 8, 9] and not more


def test_wire_shapes_have_exactly_the_protocol_fields() -> None:
    message = Message("m1", "dm_x", 1, "alice", "Alice", "bob", "hi", AT, "k1", "call-1")
    pushed = views.received(message).frame
    assert pushed["event"] == "message_received"
    view = pushed["data"]
    assert set(view) == set(ChatMessage.model_fields) == {
        "message_id", "conversation_id", "seq", "sender_id", "sender_name", "recipient_id",
        "text", "sent_at", "client_msg_id", "call_id", "edited_at", "deleted_at",
    }  # fmt: skip
    assert view["sent_at"] == "2023-11-14T22:13:20.000Z"
    assert set(views.sent_ack(message)) == set(MessageSent.model_fields) == {
        "message_id", "conversation_id", "seq", "sent_at", "client_msg_id",
    }  # fmt: skip
    read = {"bob": Markers(1, 1)}
    history = views.history("dm_x", [message], read, has_more=False)["messages"][0]
    assert history == {**view, "status": "read"}
    assert set(history) == set(HistoryMessage.model_fields)
    conversation = Conversation("dm_x", "alice", "bob", last_seq=1)
    _, change = domain.mark(conversation, "bob", Markers(), Receipt.READ, 1, AT)
    assert change is not None
    status = views.status(change).frame
    assert status["event"] == "message_status"
    assert set(status["data"]) == set(MessageStatus.model_fields) == {
        "conversation_id", "up_to_seq", "status", "by_user_id", "at",
    }  # fmt: skip
    page = views.history("dm_x", [message], {"bob": Markers(1, 0)}, has_more=False)
    assert page == {
        "conversation_id": "dm_x",
        "messages": [{**view, "status": "delivered"}],
        "has_more": False,
    }
    listing = views.conversation_list(
        [views.summary(conversation, "bob", message, {"bob": Markers(1, 0)}, 0)]
    )
    assert listing == {
        "conversations": [
            {
                "conversation_id": "dm_x",
                "peer_id": "alice",
                "last_message": {**view, "status": "delivered"},
                "unread_count": 0,
            }
        ]
    }
    notice = {"conversation_id": "dm_x", "user_id": "alice", "user_name": "Alice"}
    assert views.typing_notice("dm_x", "alice", "Alice", started=True).frame == {
        "event": "user_typing",
        "data": notice,
    }
    assert views.typing_notice("dm_x", "alice", "Alice", started=False).frame == {
        "event": "user_stopped_typing",
        "data": notice,
    }


# -- edits and deletes ---------------------------------------------------------------------

AB = Conversation.between("alice", "bob", AT)
SENT = Message("m1", AB.id, 1, "alice", "Alice", "bob", "helo", AT)
IDS = (AB.id, "m1")
DAY = 86_400.0


def test_the_sender_edits_within_the_window_and_deletes() -> None:
    edited = domain.edit(AB, SENT, "alice", IDS, "hello", AT + 60, DAY)
    assert (edited.text, edited.edited_at, edited.seq) == ("hello", AT + 60, 1)
    deleted = domain.delete(AB, edited, "alice", IDS, AT + 120)
    assert (deleted.text, deleted.deleted_at, deleted.seq) == ("", AT + 120, 1)
    assert views.received(deleted).text is None  # on the wire, a deleted text is null
    assert domain.delete(AB, deleted, "alice", IDS, AT + 999) == deleted  # again: the first


def test_only_the_sender_may_change_a_message_and_outsiders_learn_nothing() -> None:
    with pytest.raises(Forbidden):
        domain.edit(AB, SENT, "bob", IDS, "mine now", AT, DAY)
    with pytest.raises(Forbidden):
        domain.delete(AB, SENT, "bob", IDS, AT)
    with pytest.raises(NotFound):
        domain.edit(AB, SENT, "eve", IDS, "x", AT, DAY)
    with pytest.raises(NotFound):  # a message of another conversation, named with this one
        other = Conversation.between("alice", "carol", AT)
        domain.delete(other, SENT, "alice", (other.id, "m1"), AT)
    with pytest.raises(NotFound):
        domain.delete(AB, None, "alice", IDS, AT)
    with pytest.raises(NotFound):
        domain.delete(None, None, "alice", IDS, AT)


def test_a_deleted_message_or_an_old_one_cannot_be_edited() -> None:
    deleted = domain.delete(AB, SENT, "alice", IDS, AT + 1)
    with pytest.raises(Conflict, match="deleted"):
        domain.edit(AB, deleted, "alice", IDS, "back", AT + 2, DAY)
    with pytest.raises(Conflict, match="no longer"):
        domain.edit(AB, SENT, "alice", IDS, "late", AT + DAY + 1, DAY)
    assert domain.edit(AB, SENT, "alice", IDS, "just in time", AT + DAY, DAY).text == "just in time"


def test_the_changes_on_the_wire() -> None:
    edited = domain.edit(AB, SENT, "alice", IDS, "hello", AT + 60, DAY)
    change, ack = views.changed(edited, MessageEdited, MessageEditAck)
    assert change.frame["event"] == "message_edited"
    push = change.frame["data"]
    assert MessageEdited.model_validate(push).model_dump() == push
    assert push["text"] == "hello" and push["seq"] == 1 and ack["message_id"] == "m1"
    assert ack["edited_at"] == push["edited_at"] == views.received(edited).edited_at
    deleted = domain.delete(AB, edited, "alice", IDS, AT + 61)
    gone, ack = views.changed(deleted, MessageDeleted, MessageDeleteAck)
    assert gone.frame["event"] == "message_deleted"
    push = gone.frame["data"]
    assert push["text"] is None and deleted.text == ""
    assert ack == {"message_id": "m1", "deleted_at": push["deleted_at"]}
    assert MessageDeleted.model_validate(push).model_dump() == push
