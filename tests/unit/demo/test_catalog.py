"""The demo catalog generator: deterministic, Kaggle-shaped, and pictures that show the tags."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from fashion_search.demo.catalog import (
    ARTICLES_BY_TYPE,
    COLOURS,
    KAGGLE_COLUMNS,
    PATTERNS,
    generate_catalog,
    iter_products,
    pattern_of,
)
from fashion_search.errors import InvalidInput
from fashion_search.eval.styles import read_styles
from PIL import Image


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    generate_catalog(tmp_path / "a", products=30, seed=3)
    generate_catalog(tmp_path / "b", products=30, seed=3)
    generate_catalog(tmp_path / "c", products=30, seed=4)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert (tmp_path / "a/styles.csv").read_text() != (tmp_path / "c/styles.csv").read_text()


def test_a_larger_catalog_extends_a_smaller_one(tmp_path: Path) -> None:
    small = generate_catalog(tmp_path / "s", products=10).read_text().splitlines()
    large = generate_catalog(tmp_path / "l", products=25).read_text().splitlines()
    assert large[: len(small)] == small
    assert len(large) == 26


def test_rows_are_kaggle_shaped_and_names_state_the_tags(tmp_path: Path) -> None:
    csv_path = generate_catalog(tmp_path, products=120)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert tuple(rows[0].keys()) == KAGGLE_COLUMNS
    assert len({r["id"] for r in rows}) == 120
    for r in rows:
        article = ARTICLES_BY_TYPE[r["articleType"]]
        assert r["gender"] in article.genders
        assert r["baseColour"] in COLOURS
        assert (r["masterCategory"], r["subCategory"]) == (article.master, article.sub)
        pattern = pattern_of(r["productDisplayName"])
        assert pattern in PATTERNS
        middle = "" if pattern == "Plain" else f" {pattern}"
        assert r["productDisplayName"] == f"{r['gender']} {r['baseColour']}{middle} {article.noun}"
        assert 2011 <= int(r["year"]) <= 2018
    # Enough variety to search in: every type, most colours, every pattern.
    assert {r["articleType"] for r in rows} == set(ARTICLES_BY_TYPE)
    assert len({r["baseColour"] for r in rows}) >= 12
    assert {pattern_of(r["productDisplayName"]) for r in rows} == set(PATTERNS)


def test_every_row_has_a_decodable_image_and_reads_back(tmp_path: Path) -> None:
    csv_path = generate_catalog(tmp_path, products=40, image_size=80)
    styles = read_styles(csv_path, tmp_path / "images")
    assert len(styles.rows) == 40 and not styles.skipped
    with Image.open(styles.rows[0].image) as im:
        assert im.format == "JPEG" and im.size == (80, 80)


def test_plain_products_show_their_colour(tmp_path: Path) -> None:
    generate_catalog(tmp_path, products=80)
    plain = [p for p in iter_products(products=80) if p.pattern == "Plain"]
    assert len(plain) > 10
    for product in plain:
        pixels = np.asarray(Image.open(tmp_path / f"images/{product.id}.jpg").convert("RGB"), float)
        distance = np.linalg.norm(pixels - np.array(COLOURS[product.colour], float), axis=-1)
        # The garment covers a good part of the frame in (nearly) its base colour.
        assert (distance < 60).mean() > 0.06, product.display_name


def test_regenerating_rewrites_nothing(tmp_path: Path) -> None:
    generate_catalog(tmp_path, products=15)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    generate_catalog(tmp_path, products=15)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert before == after


def test_a_catalog_needs_products(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="at least 1"):
        generate_catalog(tmp_path, products=0)


def test_the_api_docs_examples_use_products_of_the_demo_catalog() -> None:
    """docs/api.md's example ids (and the names shown with them) are in the catalog `make demo`
    generates, so a reader can paste the examples against the demo."""
    import inspect
    import re

    from fashion_search.cli.demo import demo_command

    defaults = inspect.signature(demo_command).parameters
    products = {
        str(p.id): p
        for p in iter_products(products=defaults["products"].default, seed=defaults["seed"].default)
    }
    docs = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text(encoding="utf-8")
    ids = set(re.findall(r'"image_id": "([^"]+)"', docs)) | set(
        re.findall(r"/files/([^/\s\"']+)\.jpg", docs)
    )
    assert ids and ids <= set(products), ids - set(products)
    for image_id, name in re.findall(
        r'"image_id": "([^"]+)", "score": [\d.]+, "display_name": "([^"]+)"', docs
    ):
        assert products[image_id].display_name == name
