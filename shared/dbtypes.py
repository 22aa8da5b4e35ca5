"""Column types for what clients write, stored alike on SQLite and PostgreSQL.

PostgreSQL cannot store NUL (U+0000) in text, which the protocol allows in any string (and
SQLite stores). On PostgreSQL these types store a NUL as U+E000 (a private-use character),
writing U+E000 and U+E001 themselves as U+E001 followed by the character, and read back what
was written: the mapping is one-to-one, so equality in queries holds too. A text with no
NUL, U+E000 or U+E001 is stored as it is (and on SQLite everything is).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NUL, STANDS_FOR_NUL, ESCAPE = "\x00", "\ue000", "\ue001"
_TO_STORE = re.compile(f"[{NUL}{STANDS_FOR_NUL}{ESCAPE}]")
_STORED = re.compile(f"{ESCAPE}(.)|{STANDS_FOR_NUL}", re.DOTALL)


def to_stored(text: str) -> str:
    """``text`` without NUL, reversibly (see the module)."""
    if _TO_STORE.search(text) is None:
        return text
    return _TO_STORE.sub(lambda m: STANDS_FOR_NUL if m.group() == NUL else ESCAPE + m.group(), text)


def from_stored(stored: str) -> str:
    if STANDS_FOR_NUL not in stored and ESCAPE not in stored:
        return stored
    return _STORED.sub(lambda m: m.group(1) if m.group(1) is not None else NUL, stored)


class ClientString(TypeDecorator[str]):
    """``String(length)`` for text a client wrote (names, reasons, ids it chose)."""

    impl = String
    cache_ok = True

    # Elsewhere than PostgreSQL the plain type's processing, not a call per value (hot paths)
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "postgresql":
            return dialect.type_descriptor(self.impl_instance).bind_processor(dialect)
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "postgresql":
            return dialect.type_descriptor(self.impl_instance).result_processor(dialect, coltype)
        return super().result_processor(dialect, coltype)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return to_stored(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or dialect.name != "postgresql":
            return value  # type: ignore[no-any-return]
        return from_stored(value)


class ClientText(ClientString):
    """``Text`` for text a client wrote (chat messages, help requests)."""

    impl = Text
    cache_ok = True
