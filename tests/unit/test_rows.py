"""Rows ↔ dataclasses derived from the dataclass's fields (shared.rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

import pytest
from sqlalchemy import create_engine, literal, select

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
