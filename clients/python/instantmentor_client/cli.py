"""``python -m instantmentor_client``: a small command line on top of the SDK.

    python -m instantmentor_client --url ws://localhost:8000/ws --token $JWT chat --to bob
    python -m instantmentor_client mentors                  # IM_URL / IM_TOKEN from the env
    python -m instantmentor_client status available "Ask me about calculus"
    python -m instantmentor_client call bob --type audio
    python -m instantmentor_client help --subject Math "Stuck on integrals"
    python -m instantmentor_client watch --count 10 message_received

Structured results are printed as one JSON document per line; errors go to stderr as
``error: <code>: <message>`` with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

from instantmentor_client.client import EventStream, InstantMentorClient
from instantmentor_client.errors import InstantMentorError
from instantmentor_client.models import ChatMessage, Event

DEFAULT_URL = "ws://localhost:8000/ws"
CALL_EVENTS = ("call_accepted", "call_rejected", "call_ended", "call_timeout")
HELP_EVENTS = ("help_request_accepted", "help_request_declined", "help_request_expired")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m instantmentor_client", description="InstantMentor Realtime client"
    )
    parser.add_argument("--url", default=os.environ.get("IM_URL", DEFAULT_URL))
    parser.add_argument("--token", default=os.environ.get("IM_TOKEN"), help="JWT (or IM_TOKEN)")
    parser.add_argument("--timeout", type=float, default=10.0, help="request timeout (s)")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="interactive chat: lines typed are sent")
    chat.add_argument("--to", required=True, help="the other user's id")
    chat.add_argument("--history", type=int, default=10, help="messages shown first")

    send = sub.add_parser("send", help="send one message")
    send.add_argument("to")
    send.add_argument("text")

    sub.add_parser("mentors", help="every mentor's status")
    sub.add_parser("conversations", help="this user's conversations")
    sub.add_parser("requests", help="help requests (mentor: open ones; student: own)")
    sub.add_parser("ping", help="round trip to the gateway")

    status = sub.add_parser("status", help="set this mentor's status")
    status.add_argument("status", choices=["available", "busy", "in_session", "break", "offline"])
    status.add_argument("message", nargs="?")

    call = sub.add_parser("call", help="ring a user; Ctrl-C hangs up")
    call.add_argument("to")
    call.add_argument("--type", choices=["video", "audio"], default="video")
    call.add_argument("--no-wait", action="store_true", help="return once it rings")

    ask = sub.add_parser("help", help="ask mentors for help; Ctrl-C cancels")
    ask.add_argument("--subject", required=True)
    ask.add_argument("--urgency", choices=["low", "medium", "high"], default="medium")
    ask.add_argument("--mentor", help="one mentor's id (default: every available mentor)")
    ask.add_argument("--no-wait", action="store_true", help="return once it is open")
    ask.add_argument("text")

    watch = sub.add_parser("watch", help="print every push as JSON")
    watch.add_argument("events", nargs="*", help="only these event names")
    watch.add_argument("--count", type=int, help="exit after this many events")
    return parser


def emit(value: Any) -> None:
    """One JSON document per line (dataclasses and lists of them included)."""
    print(json.dumps(_plain(value), ensure_ascii=False), flush=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Event):
        return {"event": value.name, "data": value.data}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def run(args: argparse.Namespace) -> int:
    async with InstantMentorClient(
        args.url, token=args.token, request_timeout=args.timeout
    ) as client:
        command: str = args.command
        if command == "chat":
            await chat(client, args.to, args.history)
        elif command == "send":
            emit(await client.send_message(args.text, recipient_id=args.to))
        elif command == "mentors":
            emit(await client.get_mentors())
        elif command == "conversations":
            emit(await client.list_conversations())
        elif command == "requests":
            emit(await client.list_help_requests())
        elif command == "ping":
            emit(await client.ping())
        elif command == "status":
            emit(await client.update_mentor_status(args.status, args.message))
        elif command == "call":
            return await call(client, args.to, args.type, wait=not args.no_wait)
        elif command == "help":
            return await ask_help(client, args)
        elif command == "watch":
            await watch(client, args.events, args.count)
    return 0


async def chat(client: InstantMentorClient, peer: str, history: int) -> None:
    assert client.session is not None
    me = client.session.user_id

    def show(message: ChatMessage) -> None:
        who = "me" if message.sender_id == me else message.sender_name or message.sender_id
        text = "(deleted)" if message.text is None else message.text
        print(f"[{message.sent_at[11:19]}] {who}: {text}", flush=True)

    def on_message(event: Event) -> None:
        message = ChatMessage.from_dict(event.data)
        if peer in (message.sender_id, message.recipient_id):
            show(message)

    client.on("message_received", on_message)
    client.on("user_typing", lambda e: print(f"… {peer} is typing", flush=True))
    conversations = await client.list_conversations()
    conversation_id = next((c.conversation_id for c in conversations if c.peer_id == peer), None)
    if conversation_id is not None and history > 0:
        page = await client.get_history(conversation_id, limit=min(history, 100))
        for message in page.messages:
            show(message)
        if page.messages:
            await client.mark_read(conversation_id, page.messages[-1].seq)
    print(
        f"chatting with {peer} as {me}; type a line and Enter to send, Ctrl-D to quit", flush=True
    )
    lines = stdin_lines()
    while (line := await lines.get()) is not None:
        if text := line.strip():
            await client.send_message(text, recipient_id=peer)


def stdin_lines() -> asyncio.Queue[str | None]:
    """Lines of stdin, read by a daemon thread (never blocks the exit); ``None`` at EOF."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, daemon=True, name="stdin").start()
    return queue


async def call(client: InstantMentorClient, peer: str, call_type: str, *, wait: bool) -> int:
    stream = client.events(*CALL_EVENTS)  # subscribed before ringing: no answer is missed
    invitation = await client.initiate_call(peer, call_type)
    emit(invitation)
    if invitation.state != "ringing":
        return 1
    if not wait:
        return 0
    try:
        async for event in stream:
            if event.data.get("call_id") != invitation.call_id:
                continue
            emit(event)
            if event.name != "call_accepted":
                return 0 if event.name == "call_ended" else 1
    except asyncio.CancelledError:  # Ctrl-C
        await client.end_call(invitation.call_id)
        raise
    return 1


async def ask_help(client: InstantMentorClient, args: argparse.Namespace) -> int:
    stream = client.events(*HELP_EVENTS)
    created = await client.request_help(
        args.subject, args.text, urgency=args.urgency, mentor_id=args.mentor
    )
    emit(created)
    if args.no_wait:
        return 0
    try:
        async for event in stream:
            if event.data.get("request_id") == created.request_id:
                emit(event)
                if event.name == "help_request_accepted":
                    return 0
                if event.name == "help_request_expired" or args.mentor:
                    return 1
    except asyncio.CancelledError:
        await client.cancel_help_request(created.request_id)
        raise
    return 1


async def watch(client: InstantMentorClient, names: Sequence[str], count: int | None) -> None:
    stream: EventStream = client.events(*names)
    seen = 0
    async for event in stream:
        emit(event)
        seen += 1
        if count is not None and seen >= count:
            return


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.token:
        print("error: give --token or set IM_TOKEN", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except InstantMentorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
