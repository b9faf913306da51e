from __future__ import annotations

from pathlib import Path

import pytest
from fashion_search.errors import InvalidInput
from fashion_search.ingest.kaggle.styles import RowProblem, StyleRow, read_styles

HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName\n"
)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "styles.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_unquoted_commas_in_the_display_name_are_rejoined(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "39386,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,Peter England Party Jeans\n"
        "11293,Women,Apparel,Topwear,Tops,Red,Fall,2011.0,Casual,Puma Women, Red, Top\n",
    )
    rows = list(read_styles(path))
    assert all(isinstance(r, StyleRow) for r in rows)
    second = rows[1]
    assert isinstance(second, StyleRow)
    assert second.display_name == "Puma Women, Red, Top"
    assert second.tags["year"] == "2011"
    assert second.tags["articleType"] == "Tops"


def test_empty_fields_become_absent_tags(tmp_path: Path) -> None:
    (row,) = read_styles(_write(tmp_path, "5,Men,Apparel,,Shirts,,,,Casual,\n"))
    assert isinstance(row, StyleRow)
    assert row.tags == {
        "gender": "Men",
        "masterCategory": "Apparel",
        "articleType": "Shirts",
        "usage": "Casual",
    }
    assert row.display_name is None


def test_duplicates_and_bad_ids_are_problems(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "7,Men,Apparel,Topwear,Shirts,Blue,Summer,2012,Casual,One\n"
        "7,Men,Apparel,Topwear,Shirts,Blue,Summer,2012,Casual,Two\n"
        "../etc,Men,Apparel,Topwear,Shirts,Blue,Summer,2012,Casual,Bad\n"
        ",Men,Apparel,Topwear,Shirts,Blue,Summer,2012,Casual,Empty\n",
    )
    rows = list(read_styles(path))
    assert isinstance(rows[0], StyleRow) and rows[0].display_name == "One"
    problems = [r for r in rows if isinstance(r, RowProblem)]
    assert [p.reason.split(" (")[0] for p in problems] == [
        "duplicate id",
        "missing or invalid id",
        "missing or invalid id",
    ]


def test_a_file_without_an_id_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("name,colour\na,b\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="id"):
        list(read_styles(path))


def test_missing_file_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        list(read_styles(tmp_path / "nope.csv"))
