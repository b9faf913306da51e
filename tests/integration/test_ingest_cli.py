"""``fashion-search load | ingest | reconcile`` on an embedded home in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fashion_search.cli import main
from fashion_search.home import open_stores
from fashion_search.settings import Settings
from fashion_search.types import ItemStatus

from tests.fixtures.ingest import jpeg_bytes

HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName\n"
)


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_bundle: Path) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("FASHION_SEARCH_HOME", "embedded")
    monkeypatch.setenv("FASHION_SEARCH_EMBEDDED__DATA_DIR", str(data))
    monkeypatch.setenv("FASHION_SEARCH_MODEL__BUNDLE", str(tiny_bundle))
    monkeypatch.setenv("FASHION_SEARCH_MODEL__INTRA_OP_THREADS", "1")
    return data


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    main(argv)
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])  # type: ignore[no-any-return]


def test_load_then_reconcile(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "kaggle" / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(4):
        (images / f"{100 + i}.jpg").write_bytes(jpeg_bytes(i))
        rows.append(f"{100 + i},Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Shirt {i}, slim\n")
    rows.append("999,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,No image\n")
    styles = tmp_path / "kaggle" / "styles.csv"
    styles.write_text(HEADER + "".join(rows), encoding="utf-8")

    result = _run(["load", str(styles), str(images), "--limit", "10", "--workers", "2"], capsys)
    assert result["load"] == {
        "loaded": 4,
        "unchanged": 0,
        "skipped": {},
        "failed": {"image missing": 1},
        "examples": {"image missing": ["999"]},
    }
    assert result["index"] == {"indexed": 4, "deleted": 0, "failed": 0, "skipped": 0, "retry": 0}

    again = _run(["load", str(styles), str(images)], capsys)
    assert again["load"]["unchanged"] == 4  # type: ignore[index]
    assert again["index"]["skipped"] == 4  # type: ignore[index]

    report = _run(["reconcile", "--dry-run"], capsys)
    assert report["orphan_vectors"] == {"count": 0, "sample": []}
    assert report["pending"] == {"count": 0, "sample": []}
    assert report["vectors"] == report["indexed"] == 4


def test_ingest_an_outside_folder_copies_it_in(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "photos"
    (src / "summer").mkdir(parents=True)
    (src / "summer" / "a b.jpg").write_bytes(jpeg_bytes(1))
    (src / "c.png.part").write_bytes(b"partial")
    result = _run(["ingest", str(src)], capsys)
    assert result["copied"] == 1 and result["indexed"] == 1
    assert (home / "images" / "summer" / "a b.jpg").is_file()

    settings = Settings()
    stores = open_stores(settings, dimension=16)
    item = stores.catalog.get("summer/a b")
    assert item is not None and item.status is ItemStatus.INDEXED
    for store in (stores.catalog, stores.vectors):
        getattr(store, "close", lambda: None)()


def test_ingest_inside_the_images_folder_indexes_in_place(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "images" / "new").mkdir(parents=True)
    (home / "images" / "new" / "x.jpg").write_bytes(jpeg_bytes(5))
    result = _run(["ingest", str(home / "images" / "new")], capsys)
    assert result["indexed"] == 1 and "copied" not in result


def test_ingest_of_a_missing_folder_is_a_clear_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ingest", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert "is not a folder" in capsys.readouterr().err
