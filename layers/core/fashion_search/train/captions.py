"""Varied captions for one product, and which products a caption truly describes.

Training on the display name alone teaches the text tower one sentence shape. Captions here
drop attributes ("red dress"), shuffle them ("dress striped red"), swap the noun for the Kaggle
category ("Women Dresses") and wrap them in templates ("a photo of ..."). A caption that names
fewer attributes describes many products: ``consistent`` says which, so the loss does not
punish the model for ranking another red dress next to this one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TEMPLATES: tuple[str, ...] = (
    "{}", "{}", "{}", "a photo of {}", "a photo of a {}", "a picture of {}", "product photo of {}",
    "{} for sale", "buy {}", "an image of {}", "a {}", "show me {}",
)  # fmt: skip
# Tag fields whose values may stand in for, or join, the words of the display name.
PHRASE_FIELDS: tuple[str, ...] = ("gender", "baseColour", "articleType")
# Category fields, finest first: a caption may name the product by any of them ("Dresses",
# "Dress" the sub-category, "Apparel"), so queries like "footwear" or "bags" work too.
CATEGORY_FIELDS: tuple[str, ...] = ("articleType", "subCategory", "masterCategory")
_CATEGORY_WEIGHTS: tuple[float, ...] = (0.6, 0.25, 0.15)


def words(text: str) -> frozenset[str]:
    """Comparable content words: lower case, whitespace-split, surrounding punctuation off."""
    return frozenset(w for w in (t.strip(".,;:!?()\"'").casefold() for t in text.split()) if w)


@dataclass(frozen=True, slots=True)
class Describable:
    """What captions of one product are built from."""

    phrases: tuple[str, ...]  # display name split into phrases (multi-word colours kept whole)
    categories: tuple[str, ...]  # category values, alternatives for the noun (finest first)
    vocabulary: frozenset[str]  # every content word that truthfully describes the product

    @classmethod
    def of(cls, name: str, tags: dict[str, str]) -> Describable:
        phrases: list[str] = []
        rest = name
        # Multi-word tag values ("Navy Blue", "Casual Shoes") stay one phrase.
        for value in sorted((tags.get(f, "") for f in PHRASE_FIELDS), key=len, reverse=True):
            if value and " " in value and value in rest:
                rest = rest.replace(value, "\0" + value.replace(" ", "\1") + "\0")
        for part in rest.split("\0"):
            if "\1" in part:
                phrases.append(part.replace("\1", " "))
            else:
                phrases.extend(part.split())
        fields = (*PHRASE_FIELDS, *CATEGORY_FIELDS)
        vocab = words(name).union(*(words(tags.get(f, "")) for f in fields))
        categories = tuple(tags.get(f, "") for f in CATEGORY_FIELDS)
        return cls(tuple(phrases), categories, vocab)


def sample_caption(item: Describable, rng: random.Random) -> tuple[str, frozenset[str]]:
    """A caption and its content words."""
    phrases = list(item.phrases)
    if rng.random() < 0.2 and phrases:
        category = rng.choices(item.categories, weights=_CATEGORY_WEIGHTS)[0]
        if category:
            phrases[-1] = category
    if rng.random() < 0.45 and len(phrases) > 1:
        keep = rng.randint(1, len(phrases) - 1)
        chosen = sorted(rng.sample(range(len(phrases)), keep))
        phrases = [phrases[i] for i in chosen]
    if rng.random() < 0.25:
        rng.shuffle(phrases)
    text = " ".join(phrases)
    if rng.random() < 0.5:
        text = text.lower()
    return rng.choice(TEMPLATES).format(text), words(" ".join(phrases))
