"""What the catalog's own words and scores say: the weak-match threshold of a model on this
catalog, example queries that find something, and the AWS home's fitted lexical statistics.

Calibration (docs/search.md): the catalog's own example queries (a colour and a product type of
real products, "navy blue dresses") are genuine queries, and their dense scores against the
products they describe show what a genuine match scores with this model. A query whose best hit
scores under a low percentile of those is weak: it looks less like its best product than nearly
every product looks like a plain description of itself. Computed from a sample of the catalog
with the model serving (one batched text-tower call), so it is per model and needs no extra file
in the bundle. Tags, not display names: names may hold words the model cannot read (brands), and
would pull the threshold down with them. A catalog without such tags falls back to the names.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from fashion_search.errors import InvalidInput, NotFound
from fashion_search.ingest.documents import document_vector, lexical_text
from fashion_search.lexical import LexicalStats
from fashion_search.model.base import Embedder, l2_normalise
from fashion_search.settings import Settings
from fashion_search.types import CatalogItem, ItemStatus

if TYPE_CHECKING:
    from fashion_search.home import Stores

log = logging.getLogger(__name__)

CALIBRATION_SAMPLE = 500
CALIBRATION_QUERIES = 12  # example queries embedded, in one batch
PER_QUERY = 20  # products scored per example query
# The share of products whose own name scores below the threshold (see the module docstring).
CALIBRATION_PERCENTILE = 5.0
_STATS_MAX_BYTES = 64 * 1024 * 1024


def _sample(stores: Stores, n: int) -> list[CatalogItem]:
    return list(itertools.islice(stores.catalog.by_status(ItemStatus.INDEXED), n))


def name_scores(items: list[CatalogItem], model_id: str) -> np.ndarray:
    """Each named item's own-name dense score against its product document."""
    scores = [
        float(l2_normalise(it.text_embedding) @ document_vector(it.embedding, it.text_embedding))
        for it in items
        if it.embedding is not None
        and it.text_embedding is not None
        and it.model_id in (None, model_id)
        and it.text_embedding.shape == it.embedding.shape
    ]
    return np.asarray(scores, dtype=np.float64)


def threshold_of(scores: np.ndarray) -> float | None:
    if scores.size < 10:  # too few named products to say what a match scores
        return None
    return float(np.percentile(scores, CALIBRATION_PERCENTILE))


def example_scores(items: list[CatalogItem], embedder: Embedder) -> np.ndarray:
    """Dense scores of the items' example queries against the products each describes."""
    queries = examples_of(items, limit=CALIBRATION_QUERIES)
    if not queries:
        return np.zeros(0)
    vectors = dict(zip(queries, embedder.embed_texts(queries), strict=True))
    scores: list[float] = []
    taken: Counter[str] = Counter()
    for it in items:
        query = _example(it)
        if query not in vectors or taken[query] >= PER_QUERY or not _usable(it, embedder.model_id):
            continue
        assert it.embedding is not None
        taken[query] += 1
        scores.append(float(vectors[query] @ document_vector(it.embedding, it.text_embedding)))
    return np.asarray(scores, dtype=np.float64)


def calibrate(stores: Stores, embedder: Embedder) -> float | None:
    """The weak-match threshold for ``embedder`` on this catalog (None: too few products)."""
    try:
        items = _sample(stores, CALIBRATION_SAMPLE)
        threshold = threshold_of(example_scores(items, embedder))
        if threshold is None:
            threshold = threshold_of(name_scores(items, embedder.model_id))
    except Exception as exc:  # confidence is a nicety: a failing read must not fail a query
        log.warning("weak-match calibration skipped: %s", exc)
        return None
    log.info("weak-match threshold %s (model %s)", threshold, embedder.model_id)
    return threshold


def _usable(it: CatalogItem, model_id: str) -> bool:
    return (
        it.embedding is not None
        and it.model_id in (None, model_id)
        and (it.text_embedding is None or it.text_embedding.shape == it.embedding.shape)
    )


def _example(item: CatalogItem) -> str | None:
    if item.tags_predicted:
        return None
    colour, kind = item.tags.get("baseColour"), item.tags.get("articleType")
    return f"{colour} {kind}".lower() if colour and kind else None


def example_queries(
    stores: Stores, *, limit: int = 6, sample: int = CALIBRATION_SAMPLE
) -> list[str]:
    """The most common (colour, product type) pairs of real products, as lower-case queries
    ("navy blue dresses"): each names products the catalog holds, by their own tags."""
    return examples_of(_sample(stores, sample), limit=limit)


def examples_of(items: list[CatalogItem], *, limit: int) -> list[str]:
    pairs: Counter[tuple[str, str]] = Counter()
    for item in items:
        if item.tags_predicted:
            continue
        colour, kind = item.tags.get("baseColour"), item.tags.get("articleType")
        if colour and kind:
            pairs[(colour, kind)] += 1
    ranked = sorted(pairs.items(), key=lambda p: (-p[1], p[0]))
    out: list[str] = []
    seen_kinds: set[str] = set()
    for (colour, kind), _ in ranked:  # one query per product type first: a varied menu
        if kind not in seen_kinds:
            out.append(f"{colour} {kind}".lower())
            seen_kinds.add(kind)
    for (colour, kind), _ in ranked:
        query = f"{colour} {kind}".lower()
        if query not in out:
            out.append(query)
    return out[:limit]


def fit_stats(stores: Stores) -> LexicalStats:
    """Document frequencies over every INDEXED item's words (one catalog scan)."""
    return LexicalStats.fit(lexical_text(it) for it in stores.catalog.by_status(ItemStatus.INDEXED))


def save_stats(stores: Stores, settings: Settings, stats: LexicalStats) -> str:
    key = settings.search.lexical_stats_key
    if stores.ingest_prefix and key.startswith(stores.ingest_prefix):
        raise InvalidInput(
            f"the lexical statistics key {key!r} is under the ingest prefix "
            f"{stores.ingest_prefix!r}: writing it would start an ingest",
            field="FASHION_SEARCH_SEARCH__LEXICAL_STATS_KEY",
        )
    stores.blobs.put(key, stats.to_json().encode(), content_type="application/json")
    return key


def load_stats(stores: Stores, settings: Settings) -> LexicalStats:
    """The stored statistics; empty ones (every word weighs the same) when none are stored."""
    try:
        data = stores.blobs.get(settings.search.lexical_stats_key, max_bytes=_STATS_MAX_BYTES)
        return LexicalStats.from_json(data.decode("utf-8"))
    except NotFound:
        return LexicalStats()
    except Exception as exc:
        log.warning("lexical statistics unreadable, words weigh the same: %s", exc)
        return LexicalStats()


def refresh_lexical_stats(stores: Stores, settings: Settings) -> str | None:
    """Fit and store the statistics where the index matches words itself (Pinecone hybrid);
    the key written, or None where they are not needed (FTS5 counts them live)."""
    if not stores.vectors.hybrid:
        return None
    return save_stats(stores, settings, fit_stats(stores))
