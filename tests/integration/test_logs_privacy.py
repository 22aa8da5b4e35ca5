"""What users write never reaches a log (issue "Hostile input"; docs/security.md): message
texts, help request subjects and messages, mentor status messages and data, call data,
signals and reasons — on the normal paths, on error paths, and when a database refuses to
store them — whatever the log format, and at DEBUG level too.

Every process of a full stack logs to its own file (tests.support.stack); a unique marker is
put in every free-text field a client can send, and no log may contain it afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.protocol.registry import SERVICES
from tests.support.client import Frame, bearer
from tests.support.stack import Stack
from tests.support.users import connect


def _refuse_marked_rows(database: Path, table: str, column: str, marker: str) -> None:
    """A trigger that makes the service's own database refuse any row carrying ``marker``:
    the write fails inside the service, as with a broken constraint."""
    with sqlite3.connect(database, timeout=30) as db:
        db.execute(
            f"CREATE TRIGGER refuse_marked BEFORE INSERT ON {table} "
            f"WHEN NEW.{column} LIKE '%{marker}%' "
            "BEGIN SELECT RAISE(ABORT, 'row refused by the test'); END"
        )


@pytest.mark.parametrize(
    ("level", "as_json"),
    [("INFO", "false"), ("INFO", "true"), ("DEBUG", "false")],
    ids=["text-info", "json-info", "text-debug"],
)
async def test_no_user_text_in_any_log(stack: Stack, level: str, as_json: str) -> None:
    marker = f"SECRET{uuid.uuid4().hex[:12]}"
    stack.env_overrides.update(IM_LOG_LEVEL=level, IM_LOG_JSON=as_json)
    for service in SERVICES:
        stack.start_service(service)
    gateway = stack.start_gateway()
    student = await connect(stack, gateway, "stu", "student")
    mentor = await connect(stack, gateway, "men", "mentor")
    other = await connect(stack, gateway, "men2", "mentor")
    for who in ("men", "men2"):  # presence told help about both mentors
        await student.until_mentor(who, online=True)

    # -- the normal paths --------------------------------------------------------------------
    await mentor.ack(
        "mentor_available", {"status_message": f"in {marker}", "status_data": {"n": marker}}
    )
    await other.ack("mentor_busy", {"status": "break", "status_message": f"back {marker}"})
    sent = await student.ack(
        "send_message",
        {"recipient_id": "men", "text": f"my {marker} text", "client_msg_id": "c1"},
    )
    got = await mentor.event("message_received", message_id=sent["message_id"])
    assert marker in got["data"]["text"]
    conversation = sent["conversation_id"]
    await mentor.ack("message_read", {"conversation_id": conversation, "up_to_seq": 1})
    await mentor.ack("send_message", {"conversation_id": conversation, "text": f"re {marker}"})
    history = await student.ack("get_history", {"conversation_id": conversation})
    assert len(history["messages"]) == 2
    headers = bearer(stack.token("stu"))
    async with httpx.AsyncClient(base_url=gateway.http, headers=headers) as http:
        page = await http.get(f"/api/conversations/{conversation}/messages")
        assert page.status_code == 200 and marker in page.text

    asked = await student.ack(
        "student_request_help",
        {"subject": f"Math {marker}", "message": f"help {marker}", "urgency": "high"},
    )
    await mentor.event("help_request_received", request_id=asked["request_id"])
    await mentor.ack("accept_help_request", {"request_id": asked["request_id"]})
    targeted = await student.ack(
        "student_request_help",
        {"subject": f"Sci {marker}", "message": f"targeted {marker}", "mentor_id": "men2"},
    )
    await other.ack(
        "decline_help_request", {"request_id": targeted["request_id"], "reason": f"no {marker}"}
    )

    call = await student.ack(
        "initiate_call",
        {"receiver_id": "men", "call_type": "video", "call_data": {"topic": marker}},
    )
    await mentor.event("call_initiated", call_id=call["call_id"])
    await mentor.ack("accept_call", {"call_id": call["call_id"], "call_data": {"sdp": marker}})
    await student.ack(
        "call_signal", {"call_id": call["call_id"], "signal": {"type": "offer", "sdp": marker}}
    )
    await mentor.event("call_signal", call_id=call["call_id"])
    await student.ack("end_call", {"call_id": call["call_id"]})
    second = await student.ack("initiate_call", {"receiver_id": "men2", "call_type": "audio"})
    await other.event("call_initiated", call_id=second["call_id"])
    await other.ack("reject_call", {"call_id": second["call_id"], "reason": f"busy {marker}"})

    # -- error paths carrying the marker ---------------------------------------------------
    refusals: list[tuple[str, dict[str, Any], str]] = [
        ("send_message", {"recipient_id": "stu", "text": marker}, "invalid_payload"),  # self
        ("send_message", {"conversation_id": "dm_nope", "text": marker}, "not_found"),
        ("send_message", {"recipient_id": "men", "text": marker * 300}, "invalid_payload"),
        ("send_message", {"recipient_id": f"bad {marker}", "text": marker}, "invalid_payload"),
        (
            "student_request_help",
            {"subject": marker, "message": marker, "mentor_id": "nope"},
            "not_found",
        ),
        ("mentor_available", {"status_message": marker}, "forbidden"),
        (
            "initiate_call",
            {"receiver_id": "stu", "call_type": "video", "call_data": {"t": marker}},
            "invalid_payload",
        ),
    ]
    for event, data, code in refusals:
        assert await student.error(event, data) == code, (event, data)
    assert await mentor.error("mentor_available", {"status_message": marker * 20}) == (
        "invalid_payload"  # over 140 chars
    )
    for n in range(5):  # five open requests at most: the sixth is a conflict
        await student.ack("student_request_help", {"subject": "Math", "message": f"again {n}"})
    assert await student.error(
        "student_request_help", {"subject": marker, "message": f"sixth {marker}"}
    ) == ("conflict")
    for raw in (
        f'{{"event":"send_message","ref":"{marker}","data":{{"text":"{marker}"',  # truncated
        json.dumps({"event": marker, "data": {"text": marker}}),  # unknown event
        json.dumps({"event": "send_message", "data": {"text": marker * 6000}}),  # > 64 KiB
        json.dumps({"event": "ping", "ref": marker * 10}),  # a ref over 64 chars
    ):
        before = len(student.frames)
        await student.send_raw(raw)

        def is_new_error(f: Frame, n: int = before) -> bool:
            return f["event"] == "error" and f in student.frames[n:]

        await student.wait_for(is_new_error, what=f"the error for {raw[:60]!r}")

    # -- a database that refuses the row ---------------------------------------------------
    data_dir = stack.base_dir / "data"
    _refuse_marked_rows(data_dir / "chat.db", "messages", "text", marker)
    _refuse_marked_rows(data_dir / "help.db", "help_requests", "subject", marker)
    reply = await student.request(
        "send_message", {"recipient_id": "men", "text": f"doomed {marker}"}, timeout=30
    )
    assert reply["event"] == "error", reply
    assert reply["data"]["code"] in ("internal", "unavailable"), reply
    fresh = await connect(stack, gateway, "stu2", "student")  # the first has 5 open requests
    reply = await fresh.request(
        "student_request_help", {"subject": f"x {marker}", "message": "m"}, timeout=30
    )
    assert reply["event"] == "error", reply
    assert reply["data"]["code"] in ("internal", "unavailable"), reply

    for client in (student, mentor, other, fresh):
        await client.close()
    stack.stop()  # every process has flushed and written its last line

    logs = {process.log_path.name: process.log() for process in stack.processes}
    assert len(logs) == len(SERVICES) + 1
    for name, text in logs.items():
        assert text.strip(), f"{name} logged nothing: is logging configured at all?"
    leaks = {
        name: [line[:300] for line in text.splitlines() if marker in line]
        for name, text in logs.items()
        if marker in text
    }
    assert not leaks, "user text in the logs:\n" + "\n".join(
        f"{name}: {len(lines)} lines, e.g.\n  " + "\n  ".join(lines[:6])
        for name, lines in leaks.items()
    )
    # The refused writes did take the error paths (or this test proved nothing about them).
    chat_log = next(text for name, text in logs.items() if name.startswith("chat"))
    help_log = next(text for name, text in logs.items() if name.startswith("help"))
    assert "row refused by the test" in chat_log, chat_log[-2000:]
    assert "row refused by the test" in help_log, help_log[-2000:]
    if level == "DEBUG":
        assert any(" DEBUG " in text for text in logs.values()), "DEBUG level not in effect"
