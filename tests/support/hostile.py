"""Hostile frames for the fuzz test, what PROTOCOL §2 says each one must get back, and a tally
of what a connection actually got.

The expectation of a frame is worked out from its bytes alone (``expected_reply``), the way a
client would read PROTOCOL §2 and docs/protocol.md: a frame whose ``ref`` can be read (a JSON
object with a string ``ref`` of at most 64 chars, within the 64 KiB limit) gets exactly one
``ack``/``error`` (``pong`` for ``ping``) with that ``ref``; any other frame gets exactly one
``error`` with ``"ref": null``. Frames without a ``ref`` are only generated where their outcome
is known by construction (a ``ping``, or a frame the gateway must refuse).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.protocol.registry import CLIENT_EVENTS
from tests.support.client import Frame

# PROTOCOL §2, copied from the contract (not imported from shared.errors on purpose).
PROTOCOL_ERROR_CODES = frozenset(
    {
        "invalid_json",
        "invalid_payload",
        "unknown_event",
        "forbidden",
        "not_found",
        "conflict",
        "rate_limited",
        "payload_too_large",
        "unavailable",
        "internal",
    }
)
# Server frame names sent back by a client: all must be unknown_event.
SERVER_EVENT_NAMES = (
    "connected",
    "ack",
    "error",
    "pong",
    "message_received",
    "call_initiated",
    "mentor_status_update",
    "help_request_received",
)
MAX_FRAME_BYTES = 64 * 1024  # PROTOCOL §2
HARD_LIMIT_BYTES = 1024 * 1024  # services/gateway/__main__.py: beyond this, close 1009


class Expect:
    """What a frame without a readable ``ref`` must get back."""

    NULL_ERROR = "<one error with ref null>"
    NULL_PONG = "<one pong with ref null>"
    UNKNOWN = "<depends on the services>"


def expected_reply(raw: str | bytes) -> str:
    """The ``ref`` that must be answered exactly once, or an :class:`Expect` value."""
    if isinstance(raw, bytes):
        return Expect.NULL_ERROR  # binary frames are refused (text frames only)
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        # payload_too_large. PROTOCOL §2 does not say whether its error echoes the ref; the
        # gateway does not parse a frame over the limit, so the ref is null (what it does).
        return Expect.NULL_ERROR
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Expect.NULL_ERROR
    if not isinstance(document, dict):
        return Expect.NULL_ERROR
    ref = document.get("ref")
    if isinstance(ref, str) and len(ref) <= 64:
        return ref
    if "ref" in document and ref is not None:
        return Expect.NULL_ERROR  # a ref that is not a string of ≤ 64 chars: a bad envelope
    return Expect.UNKNOWN


# -- values ----------------------------------------------------------------------------------

UNICODE_ODDITIES = [
    "\u0000",  # NUL (escaped in JSON: valid)
    "\u202e",  # right-to-left override
    "\ufeff",  # BOM
    "\u200d\u200b",  # zero-width joiner / space
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\U0001f600\U0001f4a9",  # astral plane (a surrogate pair when escaped)
    "\U0010ffff",  # last code point
    "\uffff\ufffe",  # noncharacters
    "\ue000",  # private use
    "𝕳𝖊𝖑𝖑𝖔",
    "\r\n\t\x0b\x0c",
    "<script>alert(1)</script>",
    "'; DROP TABLE messages; --",
    "%s%n%x{0}{name}",
    "../../../../etc/passwd",
    '\\"\\',
    "null",
    " ",
]
# Lone surrogates can only travel as JSON escapes (a UTF-8 text frame cannot carry them).
LONE_SURROGATES = ["\ud800", "\udfff", "a\udc00b", "\ud83d"]
HOSTILE_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    -0.0,
    1.5,
    2**31,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    2**63,
    2**64,
    -(2**63),
    10**30,
    1e308,
    -1e308,
    1e-300,
    float("inf"),
    float("nan"),
]
FIELD_NAMES = [
    "receiver_id",
    "call_type",
    "call_data",
    "call_id",
    "reason",
    "signal",
    "recipient_id",
    "conversation_id",
    "text",
    "client_msg_id",
    "up_to_seq",
    "before_seq",
    "limit",
    "since",
    "status",
    "status_message",
    "status_data",
    "subject",
    "message",
    "urgency",
    "mentor_id",
    "request_id",
    "message_id",
    "sender_id",
    "user_id",
    "student_id",
    "role",
    "__proto__",
    "constructor",
]


def nested(depth: int, leaf: Any = 1, as_list: bool = False) -> Any:
    value = leaf
    for _ in range(depth - 1):
        value = [value] if as_list else {"a": value}
    return value


@dataclass
class IdPool:
    """Ids the fuzzers aim at: real users (their own and others'), ids learnt from acks, and
    ids that do not exist."""

    users: list[str]
    calls: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def learn(self, ack: dict[str, Any]) -> None:
        for key, bucket in (
            ("call_id", self.calls),
            ("conversation_id", self.conversations),
            ("request_id", self.requests),
            ("message_id", self.messages),
        ):
            value = ack.get(key)
            if isinstance(value, str) and value not in bucket and len(bucket) < 200:
                bucket.append(value)


# -- the generator ---------------------------------------------------------------------------


@dataclass
class Generated:
    raw: str | bytes
    expect: str  # a ref, or an Expect value
    kind: str


class Fuzzer:
    """Hostile frames for one connection, from one seed."""

    def __init__(self, seed: int, me: str, pool: IdPool, tag: str) -> None:
        self.rng = random.Random(seed)
        self.me = me
        self.pool = pool
        self.tag = tag
        self.count = 0
        self.events = list(CLIENT_EVENTS)
        self.kinds: list[tuple[Callable[[str], Generated], int]] = [
            (self._binary, 5),
            (self._garbled, 9),
            (self._wrong_shape, 10),
            (self._event, 70),
            (self._without_ref, 3),
            (self._too_large, 1),
        ]

    def next(self) -> Generated:
        self.count += 1
        ref = self._ref()
        makers = [maker for maker, _ in self.kinds]
        weights = [weight for _, weight in self.kinds]
        made = self.rng.choices(makers, weights)[0](ref)
        oracle = expected_reply(made.raw)
        if oracle == Expect.UNKNOWN:
            assert made.expect in (Expect.NULL_ERROR, Expect.NULL_PONG), made
        else:
            made.expect = oracle
        return made

    # -- small pieces ----------------------------------------------------------------------

    def _ref(self) -> str:
        r = self.rng.random()
        base = f"{self.tag}-{self.count}"
        if r < 0.05:
            return (base + "-" + "r" * 64)[:64]  # exactly 64 chars
        if r < 0.10:
            return base + "-\U0001f600\u202e"  # unicode in a ref is allowed
        return base

    def _dumps(self, value: Any, ascii_only: bool | None = None) -> str:
        if ascii_only is None:
            ascii_only = self.rng.random() < 0.5
        return json.dumps(value, ensure_ascii=ascii_only, separators=self._separators())

    def _separators(self) -> tuple[str, str]:
        return self.rng.choice([(",", ":"), (", ", ": "), (" ,\n", " :\t")])

    def _string(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(UNICODE_ODDITIES)
        if r < 0.45:
            size = self.rng.choice([101, 141, 201, 2001, 4001, 10_000, 30_000])
            return self.rng.choice("xé🙂") * size
        if r < 0.55:
            return ""
        alphabet = string.printable + "äöü€🙂\u0000\u202e"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 40)))

    def _user(self) -> str:
        r = self.rng.random()
        if r < 0.55:
            return self.rng.choice(self.pool.users)
        if r < 0.65:
            return self.me
        if r < 0.85:
            return f"ghost-{self.rng.randrange(10**6)}"
        return self.rng.choice(["", "a b", "x" * 65, "bad\nid", "ünïcode", "..", "@"])

    def _id(self, bucket: list[str], prefix: str) -> str:
        """An id from ``bucket`` (learnt from acks), or one that does not exist. The draws
        from the generator never depend on how much was learnt (that depends on timing):
        one seed gives one sequence of frames, whatever the ids in them."""
        r, pick = self.rng.random(), self.rng.random()
        if bucket and r < 0.6:
            return bucket[int(pick * len(bucket))]
        if r < 0.85:
            return f"{prefix}{self.rng.randrange(16**8):08x}"
        return self.rng.choice(["", "x" * 65, "\u0000", "' OR 1=1 --", "🙂" * 10])

    def _value(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if r < 0.25:
            return self.rng.choice(HOSTILE_NUMBERS)
        if r < 0.55:
            return self._string()
        if r < 0.65:
            return self.rng.choice([None, True, False])
        if r < 0.75:
            return nested(self.rng.randint(2, 50), self.rng.choice([1, "x", None]))
        if r < 0.85 and depth < 3:
            return [self._value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        if depth < 3:
            return {self.rng.choice(FIELD_NAMES): self._value(depth + 1)}
        return {}

    # -- valid data per event (then mutated) ------------------------------------------------

    def _valid_data(self, event: str) -> dict[str, Any]:
        rng, pool = self.rng, self.pool
        conversation = self._id(pool.conversations, "dm_")
        target: dict[str, Any] = (
            {"recipient_id": self._user()}
            if rng.random() < 0.6
            else {"conversation_id": conversation}
        )
        call = {"call_id": self._id(pool.calls, "call-")}
        request = {"request_id": self._id(pool.requests, "req-")}
        table: dict[str, dict[str, Any]] = {
            "initiate_call": {
                "receiver_id": self._user(),
                "call_type": rng.choice(["video", "audio"]),
                "call_data": {"topic": self._string()[:50]},
            },
            "accept_call": {**call, "call_data": {"sdp": "v=0"}},
            "reject_call": {**call, "reason": self._string()[:200]},
            "end_call": call,
            "call_signal": {**call, "signal": {"type": "offer", "sdp": self._string()[:500]}},
            "send_message": {
                **target,
                "text": self._string()[:4000] or "hello",
                "client_msg_id": f"{self.tag}-{rng.randrange(50)}",
            },
            "message_delivered": {"conversation_id": conversation, "up_to_seq": rng.randint(1, 9)},
            "message_read": {"conversation_id": conversation, "up_to_seq": rng.randint(1, 9)},
            "user_typing": target,
            "user_stopped_typing": target,
            "get_history": {
                "conversation_id": conversation,
                "before_seq": rng.randint(1, 30),
                "limit": rng.randint(1, 100),
            },
            "sync": {"since": {conversation: rng.randint(0, 50)}},
            "mentor_available": {"status_message": self._string()[:140], "status_data": {"k": 1}},
            "mentor_busy": {
                "status": rng.choice(["busy", "in_session", "break", "offline"]),
                "status_message": self._string()[:140],
            },
            "student_request_help": {
                "subject": self._string()[:100] or "Math",
                "message": self._string()[:2000] or "help",
                "urgency": rng.choice(["low", "medium", "high"]),
                "mentor_id": rng.choice(["broadcast_to_mentors", self._user()]),
            },
            "accept_help_request": request,
            "decline_help_request": {**request, "reason": self._string()[:200]},
            "cancel_help_request": request,
            "edit_message": {
                "conversation_id": conversation,
                "message_id": self._id(pool.messages, "msg-"),
                "text": "edited",
            },
            "delete_message": {
                "conversation_id": conversation,
                "message_id": self._id(pool.messages, "msg-"),
            },
        }
        return dict(table.get(event, {}))

    def _mutate(self, data: dict[str, Any]) -> None:
        rng = self.rng
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            r = rng.random()
            keys = list(data)
            if r < 0.2 and keys:
                del data[rng.choice(keys)]
            elif r < 0.55:
                name = rng.choice(keys) if keys and rng.random() < 0.7 else rng.choice(FIELD_NAMES)
                data[name] = self._value()
            elif r < 0.7:
                # ids of other users where the sender's own belongs (must be ignored)
                for name in ("sender_id", "user_id", "student_id", "mentor_id", "caller_id"):
                    data[name] = self._user()
            elif r < 0.8:
                data.update({f"extra{i}": i for i in range(rng.randint(1, 60))})
            elif r < 0.9 and keys:
                data[rng.choice(keys)] = nested(rng.randint(20, 45), rng.choice([1, "x"]))
            elif keys:
                data[rng.choice(keys)] = rng.choice(HOSTILE_NUMBERS)

    # -- kinds of frames --------------------------------------------------------------------

    def _event_name(self) -> str:
        r = self.rng.random()
        if r < 0.85:
            return self.rng.choice(self.events)
        if r < 0.93:
            return self.rng.choice(SERVER_EVENT_NAMES)
        return self.rng.choice(["", "PING", "ping ", "send_message\u0000", "🙂", "x" * 65, "a.b"])

    def _event(self, ref: str) -> Generated:
        event = self._event_name()
        data = self._valid_data(event)
        self._mutate(data)
        frame: dict[str, Any] = {"event": event, "ref": ref}
        r = self.rng.random()
        if r < 0.04:
            frame["data"] = self.rng.choice([None, [], "data", 7, [data]])
        elif r < 0.08:
            pass  # no data at all
        else:
            frame["data"] = data
        if self.rng.random() < 0.05:
            frame[self.rng.choice(["extra", "user", "sender_id", "id"])] = self._value()
        if self.rng.random() < 0.04:
            # a lone surrogate somewhere: only as an escape, which orjson refuses
            target = frame["data"] if isinstance(frame.get("data"), dict) else frame
            target["odd"] = self.rng.choice(LONE_SURROGATES)
            return Generated(self._dumps(frame, ascii_only=True), ref, "surrogate")
        return Generated(self._dumps(frame), ref, f"event:{event}")

    def _binary(self, ref: str) -> Generated:
        size = self.rng.choice([0, 1, 16, 200, 3000])
        body = bytes(self.rng.randrange(256) for _ in range(size))
        if self.rng.random() < 0.3:  # a perfectly good frame, but binary
            body = json.dumps({"event": "ping", "ref": ref}).encode()
        return Generated(body, Expect.NULL_ERROR, "binary")

    def _garbled(self, ref: str) -> Generated:
        rng = self.rng
        good = json.dumps({"event": "send_message", "ref": ref, "data": {"text": "hi"}})
        head = '{"event":"ping","ref":' + json.dumps(ref)
        choices: list[Callable[[], str]] = [
            lambda: good[: rng.randrange(0, len(good))],  # truncated
            lambda: good.replace(":", rng.choice(["", "=", "::"]), 1),
            lambda: good + rng.choice(["x", "}", ",", " {}", "\u0000"]),  # trailing garbage
            lambda: "".join(chr(rng.randrange(0x20, 0xD7FF)) for _ in range(rng.randint(1, 80))),
            lambda: "[" * rng.choice([100, 1025, 5000, 50_000]),
            lambda: '{"a":' * rng.choice([100, 2000]) + "1",
            lambda: head + ',"data":{"x":NaN}}',  # not JSON
            lambda: head + ',"data":{"x":Infinity}}',
            lambda: head + ',"data":{"x":1e400}}',  # beyond a double
            lambda: head[:-1] + '\t"}',  # a raw control char in a string
            lambda: "{'event': 'ping'}",
            lambda: rng.choice(["", " ", "\n", "{", "}", "nul", "tru", '"', "\ufeff{}"]),
            lambda: head,  # unterminated
        ]
        return Generated(rng.choice(choices)(), Expect.NULL_ERROR, "garbled")

    def _wrong_shape(self, ref: str) -> Generated:
        rng = self.rng
        shapes: list[Any] = [
            [],
            [{"event": "ping", "ref": ref}],
            1,
            -(2**63),
            "ping",
            None,
            True,
            {},
            {"event": 5, "ref": ref},
            {"event": None, "ref": ref},
            {"event": ["ping"], "ref": ref},
            {"event": "", "ref": ref},
            {"event": "p" * 65, "ref": ref},
            {"ref": ref},
            {"ref": ref, "data": {}},
            {"event": "ping", "ref": 5},
            {"event": "ping", "ref": ["a"]},
            {"event": "ping", "ref": {"a": 1}},
            {"event": "ping", "ref": True},
            {"event": "ping", "ref": "r" * 65},
            {"event": "ping", "ref": ref, "data": None},
            {"event": "ping", "ref": ref, "data": []},
            {"event": "ping", "ref": ref, "data": "x"},
            {"event": "ping", "ref": ref, "data": {"x": nested(40)}},
            {"event": "ping", "ref": ref, "data": {"x": nested(40, as_list=True)}},
            {"event": "ping", "ref": ref, "data": {"x": 2**60}},
            {"event": "get_mentors", "ref": ref, "data": {"a": -(2**70)}},
            {"event": "ping", "ref": ref, "data": {}, "event ": "x"},
        ]
        return Generated(self._dumps(rng.choice(shapes)), Expect.NULL_ERROR, "shape")

    def _without_ref(self, ref: str) -> Generated:
        rng = self.rng
        options: list[tuple[Any, str]] = [
            ({"event": "ping"}, Expect.NULL_PONG),
            ({"event": "ping", "data": {}}, Expect.NULL_PONG),
            ({"event": "ping", "data": {"ignored": "🙂"}, "ref": None}, Expect.NULL_PONG),
            ({"event": "no_such_event"}, Expect.NULL_ERROR),
            ({"event": "send_message", "data": "x"}, Expect.NULL_ERROR),
            ({"event": "send_message", "data": {}}, Expect.NULL_ERROR),
            ({"event": "get_history", "data": {"conversation_id": nested(40)}}, Expect.NULL_ERROR),
        ]
        frame, expect = rng.choice(options)
        return Generated(self._dumps(frame), expect, "no-ref")

    def _too_large(self, ref: str) -> Generated:
        size = self.rng.choice([MAX_FRAME_BYTES + 1, 100_000, 150_000])
        frame: Frame = {
            "event": "send_message",
            "ref": ref,
            "data": {"recipient_id": "x", "text": ""},
        }
        overhead = len(json.dumps(frame))
        frame["data"]["text"] = "y" * (size - overhead + 1)
        return Generated(json.dumps(frame), Expect.NULL_ERROR, "too-large")


# -- what a connection got back --------------------------------------------------------------


@dataclass
class ReplyTally:
    """The replies one connection received, read from its frames as they arrive."""

    expected: dict[str, str] = field(default_factory=dict)  # ref → kind of frame sent
    null_errors_expected: int = 0
    null_pongs_expected: int = 0
    replies: dict[str, list[Frame]] = field(default_factory=dict)
    null_errors: int = 0
    null_pongs: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    bad_codes: list[Frame] = field(default_factory=list)
    strays: list[Frame] = field(default_factory=list)  # replies to refs never sent
    _read: int = 0

    def expect(self, generated: Generated) -> None:
        if generated.expect == Expect.NULL_ERROR:
            self.null_errors_expected += 1
        elif generated.expect == Expect.NULL_PONG:
            self.null_pongs_expected += 1
        else:
            assert generated.expect not in self.expected, f"ref reused: {generated.expect}"
            self.expected[generated.expect] = generated.kind

    def consume(self, frames: list[Frame], learn: Callable[[dict[str, Any]], None]) -> None:
        for frame in frames[self._read :]:
            self._read += 1
            event = frame.get("event")
            if event == "error":
                code = frame.get("data", {}).get("code")
                self.codes[str(code)] += 1
                if code not in PROTOCOL_ERROR_CODES:
                    self.bad_codes.append(frame)
            if event not in ("ack", "error", "pong"):
                continue  # a push
            ref = frame.get("ref")
            if ref is None:
                if event == "error":
                    self.null_errors += 1
                elif event == "pong":
                    self.null_pongs += 1
                else:
                    self.strays.append(frame)
                continue
            if ref not in self.expected:
                self.strays.append(frame)
                continue
            self.replies.setdefault(ref, []).append(frame)
            if event == "ack" and isinstance(frame.get("data"), dict):
                learn(frame["data"])

    def missing(self) -> list[str]:
        return [ref for ref in self.expected if ref not in self.replies]

    def settled(self) -> bool:
        return (
            not self.missing()
            and self.null_errors >= self.null_errors_expected
            and self.null_pongs >= self.null_pongs_expected
        )

    def duplicates(self) -> dict[str, list[Frame]]:
        return {ref: got for ref, got in self.replies.items() if len(got) != 1}


# -- logs ------------------------------------------------------------------------------------

_BAD_LINE = re.compile(
    r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)|\"level\": \"(error|critical)\""
)


def bad_log_lines(lines: Iterable[str]) -> list[str]:
    """Lines at ERROR/CRITICAL level, and tracebacks (text or JSON logs)."""
    return [line for line in lines if _BAD_LINE.search(line)]
