"""``CatalogLoader``: a Kaggle-format catalog into the embedded home, then ingest."""

from __future__ import annotations

from pathlib import Path

from fashion_search.ingest.kaggle.loader import CatalogLoader
from fashion_search.ingest.triggers.oneshot import ingest_keys
from fashion_search.types import ItemStatus

from tests.fixtures.ingest import IngestHome, jpeg_bytes

HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName\n"
)
ROWS = (
    "1001,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,Turtle Check Men Navy Blue Shirt\n"
    "1002,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Puma Women, Red, Top\n"
    "1003,Men,Footwear,Shoes,Casual Shoes,White,,2012,,\n"
    "1002,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,Duplicate row\n"
    "1004,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,No image for this one\n"
)


def _kaggle(tmp_path: Path) -> tuple[Path, Path]:
    csv_path = tmp_path / "styles.csv"
    csv_path.write_text(HEADER + ROWS, encoding="utf-8")
    images = tmp_path / "kaggle-images"
    images.mkdir()
    for i, image_id in enumerate(("1001", "1002", "1003")):
        (images / f"{image_id}.jpg").write_bytes(jpeg_bytes(60 + i))
    return csv_path, images


def test_load_reports_counts_and_reasons(ingest_home: IngestHome, tmp_path: Path) -> None:
    csv_path, images = _kaggle(tmp_path)
    summary = CatalogLoader(ingest_home.stores, workers=2).load(csv_path, images)

    assert summary.loaded == 3 and summary.unchanged == 0
    assert summary.failed == {"image missing": 1}
    assert summary.examples["image missing"] == ["1004"]
    assert sum(summary.skipped.values()) == 1
    assert next(iter(summary.skipped)).startswith("duplicate id")
    item = ingest_home.stores.catalog.get("1002")
    assert item is not None and item.status is ItemStatus.PENDING
    assert item.display_name == "Puma Women, Red, Top"  # the unquoted commas rejoined
    assert ingest_home.stores.catalog.get("1004") is None


def test_loaded_images_are_ingested_with_their_tags(
    ingest_home: IngestHome, tmp_path: Path
) -> None:
    csv_path, images = _kaggle(tmp_path)
    summary = CatalogLoader(ingest_home.stores).load(csv_path, images)
    counts = ingest_keys(ingest_home.make(), ingest_home.root, summary.keys).counts

    assert counts["indexed"] == 3
    md = ingest_home.stores.vectors.fetch(["1001"])["1001"].metadata
    assert md["articleType"] == "Shirts" and md["baseColour"] == "Navy Blue"
    assert md["year"] == 2011 and md["tags_predicted"] is False
    assert md["display_name"] == "Turtle Check Men Navy Blue Shirt"
    shoe = ingest_home.stores.catalog.get("1003")
    assert shoe is not None and "season" not in shoe.tags  # empty field, absent tag


def test_rerun_uploads_nothing_and_keeps_indexed_items(
    ingest_home: IngestHome, tmp_path: Path
) -> None:
    csv_path, images = _kaggle(tmp_path)
    loader = CatalogLoader(ingest_home.stores)
    first = loader.load(csv_path, images)
    ingest_keys(ingest_home.make(), ingest_home.root, first.keys)
    mtimes = {p.name: p.stat().st_mtime_ns for p in ingest_home.root.iterdir()}

    again = loader.load(csv_path, images)
    assert (again.loaded, again.unchanged) == (0, 3)
    assert {p.name: p.stat().st_mtime_ns for p in ingest_home.root.iterdir()} == mtimes
    assert ingest_home.stores.catalog.count(ItemStatus.INDEXED) == 3  # rows not reset


def test_limit(ingest_home: IngestHome, tmp_path: Path) -> None:
    csv_path, images = _kaggle(tmp_path)
    summary = CatalogLoader(ingest_home.stores).load(csv_path, images, limit=2)
    assert summary.loaded == 2 and summary.keys == ["1001.jpg", "1002.jpg"]
