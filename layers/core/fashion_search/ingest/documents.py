"""Product documents: what the index stores for a catalog item.

A product is its picture *and* the text the catalog holds for it. The dense vector is
``normalise(IMAGE_WEIGHT * image + TEXT_WEIGHT * text)`` where ``text`` is the CLIP text vector of
the display name (Marqo's protocol scores products as 0.9 x image + 0.1 x text; the figures
behind keeping its weights are in docs/search.md). An item without a name is its image alone.
The sparse part holds the words of the name and the catalog tags (``fashion_search.lexical``).

Every writer of the index (ingest, reconcile, reindex, migrate) builds records here, so they all
store the same document for the same item; the catalog keeps both parts (``embedding`` and
``text_embedding``) so an index is rebuilt without the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fashion_search.ingest.metadata import vector_metadata
from fashion_search.lexical import document_text, sparse_document, tokenize
from fashion_search.model.base import l2_normalise
from fashion_search.types import CatalogItem, SparseVector, Vector, VectorRecord

IMAGE_WEIGHT = 0.9
TEXT_WEIGHT = 0.1


def name_text(item: CatalogItem) -> str | None:
    """The text whose vector joins the image's: the display name (None: the image alone)."""
    name = (item.display_name or "").strip()
    return name or None


def lexical_text(item: CatalogItem) -> str:
    return document_text(item.display_name, item.tags, tags_predicted=item.tags_predicted)


def document_vector(image: Vector, text: Vector | None) -> Vector:
    """The product's dense vector (unit length); the image alone when there is no text vector
    or it does not fit (another dimension). A zero image vector stays zero, for the index to
    refuse: a name must not stand in for a picture that failed."""
    raw = np.asarray(image, dtype=np.float32).reshape(-1)
    out: Vector = document_vectors(raw[None, :], [text])[0]
    return out


def document_vectors(images: Vector, texts: Sequence[Vector | None]) -> Vector:
    """``document_vector`` of each row of ``images`` with its text, in one pass of array
    arithmetic (a search scores a page of hits at once, not a vector at a time)."""
    raw = np.asarray(images, dtype=np.float32)
    usable = np.logical_and(np.isfinite(raw).all(axis=1), raw.any(axis=1)).reshape(-1, 1)
    text = np.zeros_like(raw)
    named = np.zeros((len(raw), 1), dtype=bool)
    for row, vec in enumerate(texts):
        if vec is not None and np.asarray(vec).shape == raw.shape[1:]:
            text[row], named[row] = vec, True
    image = l2_normalise(np.where(usable, raw, 0.0))
    mixed = l2_normalise(IMAGE_WEIGHT * image + TEXT_WEIGHT * l2_normalise(text))
    out: Vector = np.where(usable, np.where(named, mixed, image), raw).astype(np.float32)
    return out


def sparse_of(item: CatalogItem) -> SparseVector | None:
    indices, values = sparse_document(tokenize(lexical_text(item)))
    return SparseVector(indices, values) if indices else None


def vector_record(item: CatalogItem, image: Vector | None = None) -> VectorRecord:
    """The index record of ``item`` (``image``: its image vector when not yet on the item)."""
    values = item.embedding if image is None else image
    if values is None:
        raise ValueError(f"item {item.image_id!r} has no image vector")
    return VectorRecord(
        item.image_id,
        document_vector(values, item.text_embedding),
        vector_metadata(item),
        sparse=sparse_of(item),
    )
