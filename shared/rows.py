"""Table rows ↔ the frozen dataclasses of a service's domain, derived from the dataclass.

A column has the name of its field (unless ``columns`` names it otherwise). An enum field is
stored as its value and read back as the enum; any other conversion (a set kept as JSON text,
say) is named once, as a :class:`Stored`.
Adding a field to the dataclass and a column of the same name is all a store needs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar, get_type_hints

from sqlalchemy import Row

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stored:
    """How one field is written to its column (``dump``) and read back (``load``)."""

    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]


def _enum_of(hint: Any) -> type[enum.Enum] | None:
    """The enum a field holds (a plain enum annotation; an optional one is not recognised)."""
    return hint if isinstance(hint, type) and issubclass(hint, enum.Enum) else None


class RowMapper(Generic[T]):
    def __init__(
        self,
        kind: type[T],
        stored: Mapping[str, Stored] | None = None,
        columns: Mapping[str, str] | None = None,
    ) -> None:
        """``stored``: field → its conversion; ``columns``: field → its column's name."""
        self.kind = kind
        hints = get_type_hints(kind)
        names = [f.name for f in fields(kind)]  # type: ignore[arg-type]
        renamed = dict(columns or {})
        self.columns = {name: renamed.pop(name, name) for name in names}  # field → column
        converters = dict(stored or {})
        for name in names:
            member = _enum_of(hints[name])
            if name not in converters and member is not None:
                converters[name] = Stored(dump=lambda value: value.value, load=member)
        unknown = (set(converters) - set(names)) | set(renamed)
        if unknown:
            raise ValueError(f"{kind.__name__} has no fields {sorted(unknown)}")
        self._stored = converters
        # nothing to convert or rename: each value is read and written by its name alone, as
        # cheaply as a hand-written comprehension (chat's hot path)
        self._plain = tuple(names) if not converters and not columns else None

    def to_object(self, row: Any) -> T:
        """The dataclass of a row (a ``Row`` or a ``RowMapping``; extra columns are ignored)."""
        values: Mapping[Any, Any] = row._mapping if isinstance(row, Row) else row
        if self._plain is not None:
            return self.kind(**{name: values[name] for name in self._plain})
        loaded = {}
        for name, column in self.columns.items():
            value = values[column]
            converter = self._stored.get(name)
            loaded[name] = converter.load(value) if converter and value is not None else value
        return self.kind(**loaded)

    def to_row(self, obj: T) -> dict[str, Any]:
        """The column values of ``obj``."""
        if self._plain is not None:
            return {name: getattr(obj, name) for name in self._plain}
        row = {}
        for name, column in self.columns.items():
            value = getattr(obj, name)
            converter = self._stored.get(name)
            row[column] = converter.dump(value) if converter and value is not None else value
        return row
