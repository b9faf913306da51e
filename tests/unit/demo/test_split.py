"""The train / held-out split: stable, and unseen combinations are wholly out of training."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from fashion_search.demo.catalog import iter_products
from fashion_search.eval.split import Subset, combination, select, subset_of
from fashion_search.eval.styles import StyleRow


def _rows(n: int) -> list[StyleRow]:
    rows = []
    for p in iter_products(products=n):
        tags = {k: v for k, v in p.row().items() if k not in ("id", "productDisplayName")}
        rows.append(StyleRow(str(p.id), p.display_name, tags, Path(f"{p.id}.jpg")))
    return rows


def test_every_product_of_an_unseen_combination_is_held_out() -> None:
    rows = _rows(1500)
    by_combo: dict[tuple[str, str, str], set[Subset]] = defaultdict(set)
    for r in rows:
        by_combo[combination(r)].add(subset_of(r))
    unseen = [c for c, s in by_combo.items() if Subset.UNSEEN in s]
    assert unseen, "some combinations must be held out"
    assert all(by_combo[c] == {Subset.UNSEEN} for c in unseen)
    train = select(rows, Subset.TRAIN)
    assert not {combination(r) for r in train} & set(unseen)


def test_shares_are_about_what_was_asked_and_subsets_partition() -> None:
    rows = _rows(1500)
    train, heldout, unseen = (
        select(rows, s) for s in (Subset.TRAIN, Subset.HELDOUT, Subset.UNSEEN)
    )
    assert len(train) + len(heldout) + len(unseen) == len(rows)
    assert 0.07 < len(heldout) / len(rows) < 0.17
    assert 0.01 < len(unseen) / len(rows) < 0.15
    assert len(select(rows, Subset.TEST)) == len(heldout) + len(unseen)


def test_the_split_does_not_depend_on_order_or_size() -> None:
    small, large = _rows(200), _rows(800)
    assert [subset_of(r) for r in small] == [subset_of(r) for r in large[:200]]
    assert [subset_of(r) for r in reversed(small)] == [subset_of(r) for r in small][::-1]


def test_pattern_words_make_the_combination() -> None:
    row = StyleRow(
        "1",
        "Women Red Striped Dress",
        {"articleType": "Dresses", "baseColour": "Red"},
        Path("1.jpg"),
    )
    assert combination(row) == ("Dresses", "Red", "Striped")
    plain = StyleRow(
        "2", "Women Red Dress", {"articleType": "Dresses", "baseColour": "Red"}, Path("2.jpg")
    )
    assert combination(plain) == ("Dresses", "Red", "Plain")
