"""``fashion-search eval`` side by side: dense-only, lexical-only and hybrid, with the committed
demo model on a Kaggle-format demo catalog whose names carry brand words. The default hybrid is
no worse than dense-only on any task and better on the name tasks; image->image as served is the
pictures' own ranking (product documents do not make it worse)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fashion_search.cli import main
from fashion_search.demo.catalog import generate_catalog
from fashion_search.settings import Settings

DEMO_MODEL = Path(__file__).resolve().parents[3] / "models" / "demo"
METRICS = ("R@1", "P@1", "P@10", "MRR")


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    folder = tmp_path_factory.mktemp("brands")
    csv = generate_catalog(folder, products=300, brands=True)
    out = folder / "figures.json"
    main(["eval", "--catalog", str(csv), "--model", str(DEMO_MODEL), "--out",
          str(folder / "reports"), "--json", str(out)])  # fmt: skip
    rows = json.loads(out.read_text())["sections"]["all"]
    return {r["task"]: r for r in rows}


def test_brand_words_stand_in_the_names(tmp_path: Path) -> None:
    csv = generate_catalog(tmp_path, products=20, brands=True)
    plain = generate_catalog(tmp_path / "plain", products=20)
    branded = csv.read_text().splitlines()[1:]
    names = [ln.split(",")[-1] for ln in branded]
    assert all(len(n.split()) > 2 for n in names)
    # The same products: only the names gained a first word; the pictures are the same files.
    for a, b in zip(branded, plain.read_text().splitlines()[1:], strict=True):
        assert a.rsplit(",", 1)[0] == b.rsplit(",", 1)[0]
        assert a.rsplit(",", 1)[1].split(" ", 1)[1] == b.rsplit(",", 1)[1]
    assert (tmp_path / "images" / "10001.jpg").read_bytes() == (
        tmp_path / "plain" / "images" / "10001.jpg"
    ).read_bytes()


def test_hybrid_default_is_no_worse_than_dense_and_better_on_names(
    figures: dict[str, dict[str, float]],
) -> None:
    alpha = Settings().search.alpha
    for task in ("text->image", "category->product", "colour->product", "name-word->product"):
        dense, hybrid = figures[f"{task} [dense]"], figures[f"{task} [hybrid {alpha:.2f}]"]
        assert all(hybrid[m] >= dense[m] for m in METRICS), (task, dense, hybrid)
        assert f"{task} [lexical]" in figures
    for task in ("text->image", "name-word->product"):  # what a picture cannot read
        dense, hybrid = figures[f"{task} [dense]"], figures[f"{task} [hybrid {alpha:.2f}]"]
        assert hybrid["R@1"] > dense["R@1"] + 0.05 and hybrid["MRR"] > dense["MRR"], task


def test_image_to_image_as_served_is_the_pictures_own(
    figures: dict[str, dict[str, float]],
) -> None:
    for field in ("articleType", "baseColour"):
        before, served = (
            figures[f"image->image ({field})"],
            figures[f"image->image ({field}) [served]"],
        )
        assert all(served[m] >= before[m] for m in METRICS), (field, before, served)
