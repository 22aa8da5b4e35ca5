"""Rows ↔ dataclasses derived from the dataclass's fields (shared.rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    create_engine,
    literal,
    select,
)

from shared.rows import RowMapper, Stored


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Thing:
    thing_id: str
    colour: Colour
    tags: frozenset[str]
    note: str | None = None


def _load_tags(text: str) -> frozenset[str]:
    return frozenset(json.loads(text))


TAGS = {"tags": Stored(dump=lambda t: json.dumps(sorted(t)), load=_load_tags)}
THINGS = RowMapper(Thing, stored=TAGS)


def test_a_row_round_trips_with_enums_as_values_and_named_conversions() -> None:
    thing = Thing("t1", Colour.BLUE, frozenset({"b", "a"}))
    row = THINGS.to_row(thing)
    assert row == {"thing_id": "t1", "colour": "blue", "tags": '["a", "b"]', "note": None}
    assert type(row["colour"]) is str
    back = THINGS.to_object({**row, "extra_column": 1})
    assert back == thing and back.colour is Colour.BLUE


def test_a_conversion_for_a_field_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="colour_name"):
        RowMapper(Thing, stored={"colour_name": Stored(dump=str, load=str)})


def test_a_field_may_live_in_a_column_of_another_name() -> None:
    renamed = RowMapper(Thing, stored=TAGS, columns={"thing_id": "id"})
    thing = Thing("t1", Colour.RED, frozenset())
    row = renamed.to_row(thing)
    assert row["id"] == "t1" and "thing_id" not in row
    assert renamed.to_object(row) == thing
    with pytest.raises(ValueError, match="nope"):
        RowMapper(Thing, columns={"nope": "x"})


@dataclass(frozen=True, slots=True)
class Count:
    key: str
    count: int


def test_a_row_and_its_mapping_are_read_alike() -> None:
    counts = RowMapper(Count)
    with create_engine("sqlite://").connect() as conn:
        row = conn.execute(select(literal("k").label("key"), literal(2).label("count"))).one()
    assert counts.to_object(row) == counts.to_object(row._mapping) == Count("k", 2)
    assert counts.to_row(Count("k", 2)) == {"key": "k", "count": 2}


@dataclass(frozen=True, slots=True)
class Visit:
    visit_id: str
    count: int
    score: float
    seen: bool
    extra: dict[str, int] | None
    left_at: float | None = None


def test_a_table_derives_the_columns_a_field_s_type_says_and_keeps_the_declared_ones() -> None:
    table = RowMapper(Visit).table(
        "visits",
        MetaData(),
        Column("visit_id", String(64), primary_key=True),
        Column("shard", Integer, nullable=False),  # no field: comes first
        Index("ix_visits_left", "left_at"),  # on a derived column
    )
    assert [c.name for c in table.columns] == [
        "shard",
        "visit_id",
        "count",
        "score",
        "seen",
        "extra",
        "left_at",
    ]
    derived = {c.name: (type(c.type), c.nullable) for c in list(table.columns)[2:]}
    assert derived == {
        "count": (Integer, False),
        "score": (Float, False),
        "seen": (Boolean, False),
        "extra": (JSON, True),
        "left_at": (Float, True),
    }
    assert isinstance(table.c.visit_id.type, String) and table.c.visit_id.primary_key
    assert [c.name for c in next(iter(table.indexes)).columns] == ["left_at"]


def test_a_field_whose_type_does_not_say_its_column_must_be_declared() -> None:
    with pytest.raises(ValueError, match=r"Visit\.visit_id"):
        RowMapper(Visit).table("visits", MetaData())
    # a list would be JSON, but this one is stored by its own conversion: it is declared
    stored_as_text = {"tags": Stored(dump=json.dumps, load=json.loads)}
    with pytest.raises(ValueError, match=r"Tagged\.tags"):
        RowMapper(Tagged, stored=stored_as_text).table(
            "tagged", MetaData(), Column("key", String(64), primary_key=True)
        )
    assert len(RowMapper(Tagged).table("tagged", MetaData(), Column("key", String(64))).c) == 2


@dataclass(frozen=True, slots=True)
class Tagged:
    key: str
    tags: list[str]


def test_a_renamed_field_is_declared_by_its_column_s_name() -> None:
    table = RowMapper(Count, columns={"key": "id"}).table(
        "counts", MetaData(), Column("id", String(64), primary_key=True)
    )
    assert [c.name for c in table.columns] == ["id", "count"]
