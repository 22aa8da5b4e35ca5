"""Client frame → validated command, with no I/O (every check the gateway makes itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from shared.auth import Role
from shared.errors import InvalidJson, InvalidPayload, PayloadTooLarge, RealtimeError
from shared.protocol.base import Payload
from shared.protocol.envelope import ClientFrame, loads
from shared.protocol.registry import EventSpec, authorize, describe_validation_error, spec_for
from shared.protocol.registry import validate_payload as validate_data


@dataclass(frozen=True, slots=True)
class ParsedFrame:
    spec: EventSpec
    payload: Payload
    ref: str | None


class FrameError(RealtimeError):
    """A frame the gateway refuses itself; carries what the ``error`` frame echoes."""

    def __init__(self, cause: RealtimeError, ref: str | None, event: str | None) -> None:
        super().__init__(cause.message, retry_after_ms=cause.retry_after_ms)
        self.code = cause.code
        self.ref = ref
        self.event = event


HARD_FRAME_LIMIT = 1024 * 1024  # beyond this the socket is closed (1009), unread


def hard_frame_limit(max_frame_bytes: int) -> int:
    """The size of a client message past which it is not even read (/ws closes with 1009;
    Engine.IO drops the client): well above ``IM_MAX_FRAME_BYTES``, which gets an error."""
    return max(HARD_FRAME_LIMIT, max_frame_bytes * 4)


MAX_DEPTH = 32  # PROTOCOL v1.1 §2: JSON nested deeper is refused
MAX_SAFE_INTEGER = 2**53  # beyond ±2^53 a number is not exact in every client's JSON


def check_limits(document: Any) -> None:
    """Raise :class:`InvalidPayload` for nesting deeper than :data:`MAX_DEPTH` or a number
    beyond ±2^53 (a large integer reaches us as a float: the parser has no bignums)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            if isinstance(value, int | float) and not isinstance(value, bool):
                if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                    raise InvalidPayload("numbers must lie within ±2^53")
            continue
        if depth > MAX_DEPTH:
            raise InvalidPayload(f"JSON nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def parse_frame(raw: str | bytes, role: Role, max_bytes: int) -> ParsedFrame:
    """Decode, check size, envelope, event, role and payload; raise :class:`FrameError`."""
    if isinstance(raw, bytes):
        raise FrameError(InvalidJson("frames must be UTF-8 JSON text frames"), None, None)
    if len(raw) > max_bytes or len(raw.encode()) > max_bytes:
        raise FrameError(PayloadTooLarge(f"frame larger than {max_bytes} bytes"), None, None)
    try:
        document = loads(raw)
    except ValueError as exc:
        raise FrameError(InvalidJson(f"malformed JSON: {exc}"), None, None) from None
    ref, event = salvage_ref_and_event(document)
    try:
        check_limits(document)
    except InvalidPayload as exc:
        raise FrameError(exc, ref, event) from None
    return _validated(document, ref, event, role)


def parse_decoded(document: Any, role: Role, max_bytes: int) -> ParsedFrame:
    """:func:`parse_frame` for a frame another binding decoded already (Socket.IO): the same
    checks, its size measured as the compact JSON a ``/ws`` client would have sent."""
    ref, event = salvage_ref_and_event(document)
    try:
        check_limits(document)
    except InvalidPayload as exc:
        raise FrameError(exc, ref, event) from None
    try:
        size = len(orjson.dumps(document))  # no fallback for other types: binary data is refused
    except TypeError as exc:  # lone surrogates (refused by /ws's parser too), bytes
        raise FrameError(InvalidJson(f"not valid JSON text: {exc}"), ref, event) from None
    if size > max_bytes:
        raise FrameError(PayloadTooLarge(f"frame larger than {max_bytes} bytes"), ref, event)
    return _validated(document, ref, event, role)


def _validated(document: Any, ref: str | None, event: str | None, role: Role) -> ParsedFrame:
    try:
        frame = ClientFrame.model_validate(document)
    except ValidationError as exc:
        raise FrameError(InvalidPayload(describe_validation_error(exc)), ref, event) from None
    try:
        spec = spec_for(frame.event)
        authorize(spec, role)
        payload = validate_data(spec, frame.data)
    except RealtimeError as exc:
        raise FrameError(exc, frame.ref, frame.event) from None
    return ParsedFrame(spec, payload, frame.ref)


def salvage_ref_and_event(document: Any) -> tuple[str | None, str | None]:
    """The ``ref`` and ``event`` of a frame, where usable, to echo in an error about it."""
    if not isinstance(document, dict):
        return None, None
    ref, event = document.get("ref"), document.get("event")
    return (
        ref if isinstance(ref, str) and len(ref) <= 64 else None,
        event if isinstance(event, str) and len(event) <= 64 else None,
    )
