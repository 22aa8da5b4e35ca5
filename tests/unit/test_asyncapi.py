"""docs/asyncapi.yaml is generated from the protocol code and must not drift from it."""

from __future__ import annotations

import yaml

from shared.protocol.registry import CLIENT_EVENTS, SERVER_PUSHES
from tools.asyncapi import TARGET, render


def test_committed_asyncapi_matches_the_code() -> None:
    assert TARGET.read_text() == render(), "run: python -m tools.asyncapi"


def test_every_event_is_documented_with_its_fields() -> None:
    document = yaml.safe_load(TARGET.read_text())
    messages = document["components"]["messages"]
    assert {f"client.{name}" for name in CLIENT_EVENTS} | {
        f"server.{name}" for name in SERVER_PUSHES
    } == set(messages)
    send = messages["client.send_message"]["payload"]["properties"]["data"]["properties"]
    assert {"recipient_id", "conversation_id", "text", "client_msg_id", "call_id"} <= set(send)
    received = messages["server.message_received"]["payload"]["properties"]["data"]["required"]
    assert "seq" in received and "message_id" in received
