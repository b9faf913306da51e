"""The train / held-out split used by ``model train`` and ``eval --subset``.

Two kinds of held-out products, both decided by hashes so the split is stable whatever the
catalog's order or size:

- ``heldout``: a random share of products (by id) whose (type, colour, pattern) combination is
  also seen in training;
- ``unseen``: every product of a share of (articleType, baseColour, pattern) combinations, so the
  model never sees e.g. a checked yellow skirt in training and must compose it from parts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from enum import StrEnum

from fashion_search.eval.styles import StyleRow

PATTERN_WORDS: tuple[str, ...] = ("Striped", "Stripes", "Dotted", "Polka", "Checked", "Checks")


class Subset(StrEnum):
    ALL = "all"
    TRAIN = "train"
    HELDOUT = "heldout"  # random held-out products, seen combinations
    UNSEEN = "unseen"  # products of combinations never seen in training
    TEST = "test"  # heldout + unseen


def _bucket(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 1000


def combination(row: StyleRow) -> tuple[str, str, str]:
    words = row.name.split()
    pattern = next((w for w in words if w in PATTERN_WORDS), "Plain")
    return (row.tags.get("articleType", ""), row.tags.get("baseColour", ""), pattern)


def subset_of(row: StyleRow, *, heldout_share: float = 0.12, unseen_share: float = 0.06) -> Subset:
    if _bucket("combo:" + "|".join(combination(row))) < unseen_share * 1000:
        return Subset.UNSEEN
    if _bucket("id:" + row.id) < heldout_share * 1000:
        return Subset.HELDOUT
    return Subset.TRAIN


def select(rows: Sequence[StyleRow], subset: Subset) -> list[StyleRow]:
    if subset is Subset.ALL:
        return list(rows)
    wanted = {Subset.HELDOUT, Subset.UNSEEN} if subset is Subset.TEST else {subset}
    return [r for r in rows if subset_of(r) in wanted]
