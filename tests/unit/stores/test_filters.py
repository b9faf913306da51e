"""Pinecone's filter language: what is refused (before any I/O) and what matches what."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fashion_search.errors import InvalidFilter, InvalidInput, PayloadTooLarge
from fashion_search.stores.embedded.columns import Columns
from fashion_search.stores.filters import (
    compile_filter,
    matches,
    validate_filter,
    validate_metadata,
)

ROWS: list[dict[str, Any]] = [
    {"colour": "Red", "year": 2012, "tags": ["summer", "casual"], "sale": True},
    {"colour": "Blue", "year": 2015.0, "tags": ["winter"], "sale": False},
    {"colour": "Red", "year": "2015", "sale": 1},
    {"year": 2018},
    {},
]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"colour": {"$regex": "R.*"}}, "colour"),
        ({"$not": {"colour": "Red"}}, "$not"),
        ({"$or": []}, "$or"),
        ({"$and": {"colour": "Red"}}, "$and"),
        ({"colour": ["Red", "Blue"]}, "colour"),
        ({"colour": None}, "colour"),
        ({"colour": {}}, "colour"),
        ({"year": {"$gt": "2012"}}, "year"),
        ({"sale": {"$gte": True}}, "sale"),
        ({"colour": {"$in": "Red"}}, "colour"),
        ({"colour": {"$in": [None]}}, "colour"),
        ({"colour": {"$nin": [{"a": 1}]}}, "colour"),
        ({"colour": {"$exists": 1}}, "colour"),
        ({"year": {"$lt": float("nan")}}, "year"),
        ({"": "x"}, ""),
    ],
)
def test_malformed_filters_name_the_field_or_operator(bad: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        validate_filter(bad)
    assert caught.value.field == named
    assert caught.value.code == "invalid_filter"


def test_non_object_filter_and_deep_nesting_are_refused() -> None:
    with pytest.raises(InvalidFilter):
        validate_filter(["colour"])  # type: ignore[arg-type]
    deep: dict[str, Any] = {"colour": "Red"}
    for _ in range(40):
        deep = {"$and": [deep]}
    with pytest.raises(InvalidFilter, match="deeper"):
        validate_filter(deep)


def test_unknown_field_is_refused_when_fields_are_known() -> None:
    validate_filter({"colour": "Red"}, known_fields={"colour", "year"})
    with pytest.raises(InvalidFilter, match="colur") as caught:
        validate_filter({"$or": [{"colour": "Red"}, {"colur": "x"}]}, known_fields={"colour"})
    assert caught.value.field == "colur"


def _ids(f: dict[str, Any]) -> list[int]:
    return [i for i, row in enumerate(ROWS) if matches(f, row)]


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        ({}, [0, 1, 2, 3, 4]),
        ({"colour": "Red"}, [0, 2]),
        ({"colour": {"$eq": "Red"}, "year": 2012}, [0]),
        ({"colour": {"$ne": "Red"}}, [1, 3, 4]),  # records without the field match $ne
        ({"year": 2015}, [1]),  # numbers compare as float64; the string "2015" is not a number
        ({"year": {"$gte": 2015, "$lt": 2018}}, [1]),
        ({"year": {"$lte": 2018}}, [0, 1, 3]),
        ({"year": {"$in": [2012, "2015"]}}, [0, 2]),
        ({"year": {"$nin": [2012, 2018]}}, [1, 2, 4]),
        ({"tags": "summer"}, [0]),  # a list matches when any element does
        ({"tags": {"$in": ["winter", "spring"]}}, [1]),
        ({"tags": {"$nin": ["casual"]}}, [1, 2, 3, 4]),
        ({"tags": {"$ne": "winter"}}, [0, 2, 3, 4]),
        ({"sale": True}, [0]),  # booleans are not numbers: 1 is not true
        ({"sale": {"$ne": False}}, [0, 2, 3, 4]),
        ({"sale": {"$exists": True}}, [0, 1, 2]),
        ({"sale": {"$exists": False}}, [3, 4]),
        ({"$or": [{"colour": "Blue"}, {"year": {"$gt": 2016}}]}, [1, 3]),
        ({"$and": [{"colour": "Red"}, {"$or": [{"sale": True}, {"year": "2015"}]}]}, [0, 2]),
    ],
)
def test_matches_follows_pinecone_semantics(f: dict[str, Any], expected: list[int]) -> None:
    assert _ids(f) == expected


@pytest.mark.parametrize(
    "f",
    [
        {"colour": "Red"},
        {"colour": {"$ne": "Red"}},
        {"year": {"$gte": 2015}},
        {"year": {"$in": [2012, "2015"]}},
        {"tags": {"$nin": ["casual"]}},
        {"tags": "winter"},
        {"sale": {"$exists": False}},
        {"sale": True},
        {"$or": [{"colour": "Blue"}, {"year": {"$gt": 2016}}]},
        {"colour": "Green"},
    ],
)
def test_columnar_evaluation_agrees_with_brute_force(f: dict[str, Any]) -> None:
    columns = Columns()
    columns.build({"colour", "year", "tags", "sale"}, [], len(ROWS))
    for row, metadata in enumerate(ROWS):
        columns.add_row(row, metadata, len(ROWS))
    mask = columns.evaluate(compile_filter(f), len(ROWS))
    assert list(np.flatnonzero(mask)) == _ids(f)


def test_metadata_rules_are_pinecones() -> None:
    assert validate_metadata({"a": "x", "n": 1.5, "b": True, "l": ["p"]}, record_id="r")
    for bad in ({"a": None}, {"a": {"nested": 1}}, {"a": [1, 2]}, {"$a": "x"}, {"a": float("inf")}):
        with pytest.raises(InvalidInput):
            validate_metadata(bad, record_id="r")
    with pytest.raises(PayloadTooLarge, match="40960"):
        validate_metadata({"blob": "x" * 41_000}, record_id="r")
