"""Zero-shot tags for images that arrive without any: the model scores each field's known values
(the catalog's tag vocabulary) as text prompts against the image, and the best value wins."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fashion_search.model.base import Embedder, l2_normalise
from fashion_search.types import Vector

# Several phrasings per field, averaged (prompt ensembling, as in the CLIP paper): one phrasing
# alone is brittle for short labels like "Tshirts" or "Navy Blue".
DEFAULT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "articleType": ("a photo of {}", "a product photo of {}", "{}"),
    "baseColour": ("a photo of a {} fashion item", "a {} colored product", "{} color"),
    "masterCategory": ("a photo of {}", "a product in the {} category"),
    "subCategory": ("a photo of {}", "a product in the {} category"),
    "gender": ("a fashion product for {}", "{} clothing"),
    "usage": ("a product for {} use", "{} wear"),
    "season": ("{} fashion", "clothing for {}"),
}


class TagPredictor:
    """Predicts tags for image vectors. Prompt embeddings are computed once per value and cached
    (per embedder, so a model change never mixes spaces)."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        templates: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._embedder = embedder
        self._templates = dict(templates or DEFAULT_TEMPLATES)
        self._cache: dict[tuple[str, str], Vector] = {}

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._templates)

    def _value_vectors(self, field: str, values: Sequence[str]) -> Vector:
        missing = [v for v in values if (field, v) not in self._cache]
        if missing:
            templates = self._templates[field]
            texts = [t.format(v) for v in missing for t in templates]
            emb = self._embedder.embed_texts(texts).reshape(len(missing), len(templates), -1)
            for value, rows in zip(missing, l2_normalise(emb.mean(axis=1)), strict=True):
                self._cache[(field, value)] = rows
        return np.stack([self._cache[(field, v)] for v in values])

    def predict(
        self, vectors: Vector, vocabulary: Mapping[str, Sequence[str]]
    ) -> list[dict[str, str]]:
        """One tag dict per row of ``vectors``. A field is predicted only when the vocabulary
        offers a real choice (two values or more)."""
        out: list[dict[str, str]] = [{} for _ in range(len(vectors))]
        if len(vectors) == 0:
            return out
        for field in self._templates:
            values = sorted({v for v in vocabulary.get(field, ()) if v})
            if len(values) < 2:
                continue
            scores = vectors @ self._value_vectors(field, values).T
            for row, best in enumerate(np.argmax(scores, axis=1)):
                out[row][field] = values[int(best)]
        return out


class VocabularyCache:
    """The catalog's tag vocabulary, re-read at most every ``ttl_s`` seconds: a store read (one
    GetItem on DynamoDB) need not happen per batch, and new values can wait a few minutes."""

    def __init__(
        self,
        load: Callable[[], dict[str, list[str]]],
        *,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._value: dict[str, list[str]] | None = None
        self._loaded_at = 0.0

    def get(self) -> dict[str, list[str]]:
        now = self._clock()
        if self._value is None or now - self._loaded_at > self._ttl_s:
            self._value = self._load()
            self._loaded_at = now
        return self._value
