"""Reading the ``data`` of the server's frames into typed views: the checks every view of
:mod:`instantmentor_client.models` shares, and the lists some ``ack`` data hold."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from instantmentor_client.errors import ProtocolViolation

T = TypeVar("T")


def build(cls: type[T], data: Mapping[str, Any], **override: Any) -> T:
    """``cls(**known fields of data)``; a missing field without default → ProtocolViolation."""
    if not isinstance(data, Mapping):
        raise ProtocolViolation(f"{cls.__name__}: expected an object, got {data!r}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.name in override:
            kwargs[f.name] = override[f.name]
        elif f.name in data:
            kwargs[f.name] = data[f.name]
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ProtocolViolation(f"{cls.__name__}: field {f.name!r} missing in {dict(data)!r}")
    return cls(**kwargs)


def parse_list(
    data: Mapping[str, Any], key: str, parse: Callable[[Mapping[str, Any]], T]
) -> list[T]:
    """The list ``data[key]``, each item through ``parse``; not a list → ProtocolViolation."""
    value = data.get(key)
    if not isinstance(value, list):
        raise ProtocolViolation(f"expected a list in {key!r}, got {value!r}")
    return [parse(item) for item in value]
