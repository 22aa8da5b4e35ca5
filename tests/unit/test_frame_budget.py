"""PROTOCOL v1.1 §2: server frames stay within 256 KiB; lists are cut to fit."""

from __future__ import annotations

from services.chat import views
from services.chat.domain import Message
from shared.protocol.envelope import MAX_SERVER_FRAME_BYTES, ack_frame, dumps_bytes, fit


def test_fit_keeps_the_first_or_the_last_items_that_fit() -> None:
    items = [{"n": i, "pad": "x" * 90} for i in range(100)]
    first = fit(items, budget=1_000)
    last = fit(items, budget=1_000, keep_last=True)
    assert first == items[: len(first)] and 5 <= len(first) < 10
    assert last == items[-len(last) :] and len(last) == len(first)
    assert fit(items) == items  # small lists are untouched


def _message(seq: int, text: str) -> Message:
    return Message(
        id=f"m{seq}",
        conversation_id="dm_a_b",
        seq=seq,
        sender_id="a",
        sender_name="A",
        recipient_id="b",
        text=text,
        sent_at=1_700_000_000.0 + seq,
        client_msg_id=None,
        call_id=None,
        command_id=None,
    )


def test_a_history_page_of_the_largest_messages_fits_one_frame_newest_kept() -> None:
    widest = "é\u0001" * 2000  # 4,000 chars: 2-byte UTF-8, and a control char escaped in 6
    page = [_message(seq, widest) for seq in range(1, 101)]
    reply = views.history("dm_a_b", page, {}, has_more=False)
    frame = dumps_bytes(ack_frame("r1", reply))
    assert len(frame) <= MAX_SERVER_FRAME_BYTES
    seqs = [m["seq"] for m in reply["messages"]]
    assert seqs == list(range(101 - len(seqs), 101)) and len(seqs) < 100
    assert reply["has_more"] is True, "the client pages on with before_seq"
