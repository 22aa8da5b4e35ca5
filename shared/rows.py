"""Table rows ↔ the frozen dataclasses of a service's domain, derived from the dataclass.

A column has the name of its field (unless ``columns`` names it otherwise). An enum field is
stored as its value and read back as the enum; any other conversion (a set kept as JSON text,
say) is named once, as a :class:`Stored`.
A table may be derived from the dataclass too (:meth:`RowMapper.table`): a field whose type
says all its column needs (a number, a flag, JSON, optional or not) gets its column from the
field; only the others are declared. Adding such a field is then all a store needs (the
migration that adds its column aside: that is history, and a test checks the two agree).
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar, Union, get_args, get_origin, get_type_hints

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, Row, Table
from sqlalchemy.sql.schema import SchemaItem
from sqlalchemy.types import TypeEngine

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stored:
    """How one field is written to its column (``dump``) and read back (``load``)."""

    dump: Callable[[Any], Any]
    load: Callable[[Any], Any]


# The column types a field's own type implies; any other field declares its column.
_COLUMN_TYPES: dict[Any, type[TypeEngine[Any]]] = {
    int: Integer,
    float: Float,
    bool: Boolean,
    dict: JSON,
    list: JSON,
}


def _column_type(hint: Any) -> tuple[type[TypeEngine[Any]] | None, bool]:
    """The column type ``hint`` implies (None: it implies none), and whether it is nullable."""
    args = get_args(hint)
    nullable = get_origin(hint) in (Union, types.UnionType) and type(None) in args
    if nullable:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    return _COLUMN_TYPES.get(get_origin(hint) or hint), nullable


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
        self._hints = hints = get_type_hints(kind)
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

    def table(self, name: str, metadata: MetaData, *items: SchemaItem) -> Table:
        """The table of this dataclass. The columns in ``items`` declare the fields whose
        column needs more than the field's type says (a string's length, a key), and any
        column that is no field (those come first). Every other field's column is derived from
        its type: ``int`` Integer, ``float`` Float, ``bool`` Boolean, ``dict``/``list`` JSON,
        nullable when the field may be None. Fields keep their order. Constraints and indexes
        in ``items`` go to the table."""
        declared = {item.name: item for item in items if isinstance(item, Column)}
        fielded = set(self.columns.values())
        columns = [column for name, column in declared.items() if name not in fielded]
        for field_name, column_name in self.columns.items():
            if column_name in declared:
                columns.append(declared[column_name])
                continue
            column_type, nullable = _column_type(self._hints[field_name])
            if column_type is None or field_name in self._stored:
                raise ValueError(
                    f"{self.kind.__name__}.{field_name}: its type does not say its column; "
                    "declare the column"
                )
            columns.append(Column(column_name, column_type, nullable=nullable))
        others = [item for item in items if not isinstance(item, Column)]
        return Table(name, metadata, *columns, *others)

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
