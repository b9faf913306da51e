"""Search core: text, image and multimodal queries -> vector query -> catalog join.

Routes and the CLI parse and wire; everything a query does happens here, the same in both homes.

Multimodal queries combine L2-normalised vectors as
``q = w_img * img + w_txt * txt - w_neg * neg`` and L2-normalise ``q`` again, so the weights are
relative: (1, 1, 0) is the midpoint of image and text on the sphere, a larger ``w_txt`` pulls the
result toward the text, and the negative text pushes away from what it describes.

A query with a text is also matched word by word against the products' names and tags
(``fashion_search.lexical``) and ranked by ``alpha * dense + (1 - alpha) * lexical``: the
embedded home gathers candidates from the exact scan and from SQLite FTS5, the AWS home asks
Pinecone one sparse-dense query. Either way each hit's two parts are then scored from the
catalog item with the same functions, so both homes rank the same way (docs/search.md).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fashion_search.errors import InvalidInput, NotFound, PayloadTooLarge
from fashion_search.images import Picture
from fashion_search.ingest.documents import document_vectors, lexical_text
from fashion_search.lexical import (
    LexicalStats,
    check_alpha,
    fuse,
    lexical_score,
    query_weights,
    sparse_query,
    tokenize,
)
from fashion_search.model.base import Embedder, l2_normalise
from fashion_search.query import Query
from fashion_search.settings import Settings
from fashion_search.stores.catalog import LexicalCatalog
from fashion_search.stores.filters import matches
from fashion_search.stores.vectors import VectorIndex
from fashion_search.types import (
    TAG_FIELDS,
    CatalogItem,
    Filter,
    ItemStatus,
    SparseVector,
    Vector,
)
from fashion_search.vocabulary import calibrate, example_queries, load_stats

if TYPE_CHECKING:
    from fashion_search.home import Stores

logger = logging.getLogger(__name__)

# Metadata fields ingest writes besides the tags; filters may use them too.
EXTRA_FILTER_FIELDS = ("display_name", "key", "tags_predicted")
_TAGS_TTL_S = 60.0
# Characters that show nothing: controls (NUL), format marks (U+FEFF, zero-width joiners, soft
# hyphen), separators, unassigned/private code points, and the few "letters" that render blank.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Image-only queries: candidates from the product documents, ranked by the pictures alone.
RERANK_FACTOR = 4
RERANK_EXTRA = 20
# Words in more than this share of the catalog bring no FTS5 candidates of their own.
COMMON_SHARE = 0.25
# Calibration, example queries and fitted statistics move with the catalog, slowly.
_CAL_TTL_S = 600.0


@dataclass(slots=True, frozen=True)
class Hit:
    image_id: str
    score: float
    key: str
    image_url: str
    display_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # The two parts of a hybrid score (``score = alpha * dense + (1 - alpha) * lexical``);
    # None when the query had no lexical part.
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(slots=True, frozen=True)
class SearchResult:
    hits: list[Hit]
    model_id: str
    took_ms: float
    # A text query whose best hit neither looks like it (dense score under the model's
    # calibrated threshold) nor carries its words: the results are the nearest, not answers.
    weak_match: bool = False
    weak_below: float | None = None
    alpha: float | None = None


@dataclass(slots=True, frozen=True)
class _Fusion:
    """One hybrid query, and the scoring both homes share once they have their candidates."""

    vector: Vector
    tokens: list[str]
    alpha: float
    top_k: int
    filters: Filter | None
    exclude: set[str]

    @property
    def k(self) -> int:
        """Candidates to ask for: top_k, plus room for the excluded and vanished ones."""
        return self.top_k + len(self.exclude) + 2

    def scored(
        self,
        dense: Mapping[str, float],
        terms: Mapping[str, Sequence[str]],
        weights: Mapping[str, float],
    ) -> list[tuple[float, str, float, float]]:
        """(fused, id, dense, lexical) of each candidate but the excluded ones."""
        out = []
        for image_id, d in dense.items():
            if image_id not in self.exclude:
                words = terms.get(image_id)
                lex = lexical_score(weights, words) if words else 0.0
                out.append((fuse(d, lex, self.alpha), image_id, d, lex))
        return out


def has_visible_text(value: str) -> bool:
    """True when ``value`` has a character a person can see (not only NUL, U+FEFF, spaces...)."""
    return any(
        not ch.isspace()
        and ch not in _BLANK_LETTERS
        and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
        for ch in value
    )


class Searcher:
    """Answers queries against one home's stores with one embedder."""

    def __init__(
        self,
        stores: Stores,
        embedder: Embedder,
        *,
        settings: Settings,
        fetch: Callable[[str], bytes] | None = None,
    ) -> None:
        self.stores = stores
        self.embedder = embedder
        self.settings = settings
        self._fetch = fetch or self._default_fetch
        self._tags: tuple[float, dict[str, list[str]]] | None = None
        self._tags_lock = threading.Lock()
        self._calibration: tuple[float, float | None] | None = None
        self._stats: tuple[float, LexicalStats] | None = None
        self._examples: tuple[float, list[str]] | None = None
        self._model_id_cache: str | None = None

    # ----- public queries -------------------------------------------------------------------

    def by_text(
        self,
        text: str,
        *,
        top_k: int | None = None,
        filters: Filter | None = None,
        alpha: float | None = None,
    ) -> SearchResult:
        return self.search(Query(text=text, w_image=0.0, top_k=top_k, filters=filters, alpha=alpha))

    def by_image(
        self, image: bytes, *, top_k: int | None = None, filters: Filter | None = None
    ) -> SearchResult:
        return self.search(Query(image=image, w_text=0.0, top_k=top_k, filters=filters))

    def search(self, q: Query) -> SearchResult:
        start = time.perf_counter()
        self._check_query(q)
        filters = self.validate_filters(q.filters)
        has_image = q.has_image
        top_k = q.resolved_top_k()
        self._check_top_k(top_k)
        parts: list[tuple[float, Vector]] = []
        exclude: set[str] = set()
        if has_image and q.w_image > 0:  # a zero weight costs no fetch and no model call
            image_vec, exclude = self._image_vector(q)
            parts.append((q.w_image, image_vec))
        texts = [
            (w, t) for w, t in ((q.w_text, q.text), (-q.w_negative, q.negative_text)) if t and w
        ]
        if texts:
            vectors = self.embedder.embed_texts([t for _, t in texts])
            parts.extend((w, vectors[i]) for i, (w, _) in enumerate(texts))
        vector = combine(parts)
        text = q.text if q.text and q.w_text > 0 else None
        alpha = check_alpha(self.settings.search.alpha if q.alpha is None else q.alpha)
        weak, threshold = False, None
        if text is not None and tokenize(text) and alpha < 1.0:
            hits = self._hybrid(
                vector, text, alpha=alpha, top_k=top_k, filters=filters, exclude=exclude
            )
        else:
            hits = self._query(
                vector, top_k=top_k, filters=filters, exclude=exclude, by_picture=text is None
            )
        if text is not None and not has_image:
            threshold = self.weak_threshold()
            weak = self._is_weak(hits, threshold)
        took = (time.perf_counter() - start) * 1000.0
        return SearchResult(
            hits=hits,
            model_id=self.embedder.model_id,
            took_ms=round(took, 3),
            weak_match=weak,
            weak_below=threshold,
            alpha=alpha if text is not None else None,
        )

    def get_item(self, image_id: str) -> tuple[CatalogItem, str]:
        item = self.stores.catalog.get(image_id)
        if item is None or item.status == ItemStatus.DELETED:
            raise NotFound(f"no image with id {image_id!r}", field="image_id")
        return item, self.stores.blobs.url(item.key)

    def tag_values(self) -> dict[str, list[str]]:
        """The catalog's tag fields and values, cached briefly (one read per refresh, not per
        request, even though both catalogs keep them in a single row/item)."""
        with self._tags_lock:
            if self._tags is None or time.monotonic() - self._tags[0] > _TAGS_TTL_S:
                self._tags = (time.monotonic(), self.stores.catalog.tag_values())
            return self._tags[1]

    def validate_filters(self, filters: Filter | None) -> Filter | None:
        if not filters:
            return None
        from fashion_search.stores.filters import validate_filter

        known = {*self.tag_values(), *TAG_FIELDS, *EXTRA_FILTER_FIELDS}
        validate_filter(filters, known_fields=known)
        return filters

    def warm(self) -> None:
        """Run each tower and one vector query once, so the first user query pays neither
        onnxruntime's first-run setup, the model id's file hash, nor the index's first load
        (measured in docs/api.md)."""
        from PIL import Image

        _ = self.embedder.model_id  # a hash of the bundle's files, computed on first use
        vec = self.embedder.embed_texts(["warm up"])[0]
        self.embedder.embed_images([Image.new("RGB", (64, 64), (128, 128, 128))])
        ns = self.stores.namespace
        self.stores.vectors.query(vec, top_k=1, include_metadata=True, namespace=ns)
        self.weak_threshold()  # the calibration's catalog read and text-tower call, up front

    def weak_threshold(self) -> float | None:
        """The dense score under which a text query's best match is weak: the setting, else
        calibrated on this catalog with this model (cached like the tag values)."""
        if self.settings.search.weak_score is not None:
            return self.settings.search.weak_score
        with self._tags_lock:
            if self._calibration is None or time.monotonic() - self._calibration[0] > _CAL_TTL_S:
                self._calibration = (time.monotonic(), calibrate(self.stores, self.embedder))
            return self._calibration[1]

    def example_queries(self, limit: int = 6) -> list[str]:
        """Queries made of the catalog's own words (colour + product type, from the tags), each
        of which finds something here."""
        with self._tags_lock:
            if self._examples is None or time.monotonic() - self._examples[0] > _CAL_TTL_S:
                try:
                    found = example_queries(self.stores, limit=12)
                except Exception as exc:  # a nicety: /tags answers without them
                    logger.warning("example queries unavailable: %s", exc)
                    return []
                self._examples = (time.monotonic(), found)
            return self._examples[1][:limit]

    def index_size(self) -> int:
        return int(self.stores.vectors.count(namespace=self.stores.namespace))

    def index_version(self) -> str:
        """Changes whenever the index does (``/health``): the UI keys its result cache on it."""
        return str(self.stores.vectors.version(namespace=self.stores.namespace))

    def index_engine(self) -> str:
        """What answers vector queries (``/health``): the adapter's ``engine``, else its name."""
        engine = getattr(self.stores.vectors, "engine", None)
        if callable(engine):
            return str(engine(namespace=self.stores.namespace))
        return type(self.stores.vectors).__name__

    # ----- internals ------------------------------------------------------------------------

    def _default_fetch(self, url: str) -> bytes:
        from fashion_search.fetch import fetch_image

        return fetch_image(
            url, settings=self.settings.fetch, max_bytes=self.settings.limits.max_upload_bytes
        )

    def _check_query(self, q: Query) -> None:
        limit = self.settings.limits.max_text_chars
        for name in ("text", "negative_text"):
            value = getattr(q, name)
            if value is None:
                continue
            if not has_visible_text(value):
                raise InvalidInput(
                    f"{name} must not be empty or only invisible characters", field=name
                )
            if len(value) > limit:
                raise InvalidInput(f"{name} is longer than {limit} characters", field=name)
        sources = [s for s in ("image", "image_url", "image_id") if getattr(q, s) is not None]
        if len(sources) > 1:
            raise InvalidInput("give at most one of image, image_url, image_id", field=sources[1])
        if not sources and q.text is None:
            raise InvalidInput("a query needs an image or a text", field="text")
        if isinstance(q.image, bytes) and len(q.image) > self.settings.limits.max_upload_bytes:
            cap = self.settings.limits.max_upload_bytes
            raise PayloadTooLarge(f"the image is over {cap} bytes", field="file")
        for name in ("w_image", "w_text", "w_negative"):
            w = getattr(q, name)
            if not np.isfinite(w) or w < 0:
                raise InvalidInput(f"weight {name} must be a finite number >= 0", field="weights")
        if q.alpha is not None:
            check_alpha(q.alpha)

    def _check_top_k(self, top_k: int) -> None:
        cap = self.settings.limits.max_top_k
        if not 1 <= top_k <= cap:
            raise InvalidInput(f"top_k must be between 1 and {cap}", field="top_k")

    def _image_vector(self, q: Query) -> tuple[Vector, set[str]]:
        """The query image's vector and the catalog ids that are that same image."""
        if q.image_id is not None:
            return self._stored_vector(q.image_id)
        data = self._fetch(q.image_url) if q.image_url is not None else q.image
        assert data is not None  # search() calls this only with an image source
        picture = data.image if isinstance(data, Picture) else data
        embedded = self.embedder.embed_images([picture])
        if not embedded.ok(0):
            raise embedded.errors[0]
        digest = data.sha256 if isinstance(data, Picture) else hashlib.sha256(data).hexdigest()
        exclude = {item.image_id for item in self.stores.catalog.find_by_hash(digest)}
        return embedded.vectors[0], exclude

    def _stored_vector(self, image_id: str) -> tuple[Vector, set[str]]:
        item = self.stores.catalog.get(image_id)
        if item is None or item.status == ItemStatus.DELETED:
            raise NotFound(f"no image with id {image_id!r}", field="image_id")
        exclude = {image_id}
        if item.content_hash:
            exclude |= {i.image_id for i in self.stores.catalog.find_by_hash(item.content_hash)}
        if item.embedding is not None and item.model_id in (None, self.embedder.model_id):
            return l2_normalise(item.embedding), exclude
        records = self.stores.vectors.fetch([image_id], namespace=self.stores.namespace)
        if image_id not in records:
            raise NotFound(f"image {image_id!r} has no stored embedding yet", field="image_id")
        return l2_normalise(records[image_id].values), exclude

    def _query(
        self,
        vector: Vector,
        *,
        top_k: int,
        filters: Filter | None,
        exclude: set[str],
        by_picture: bool = False,
    ) -> list[Hit]:
        """Dense hits. ``by_picture`` (a query that is only an image): the index's product
        documents bring the candidates and the pictures alone rank them, so a product's name
        never makes one picture look more like another (image->image stays as it was,
        measured in docs/search.md)."""
        # Ask for more than top_k so that dropping the query's own image (and vectors whose
        # catalog item is gone) still leaves top_k hits.
        k = top_k + len(exclude) + 2
        if by_picture:
            k = max(k, RERANK_FACTOR * top_k + RERANK_EXTRA)
        matches = self.stores.vectors.query(
            vector,
            top_k=self.stores.vectors.capped(k),
            filter=filters,
            include_metadata=False,
            namespace=self.stores.namespace,
        )
        matches = [m for m in matches if m.id not in exclude]
        items = self.stores.catalog.get_many([m.id for m in matches])
        scored: list[tuple[float, str]] = []
        for m in matches:
            item = items.get(m.id)
            if item is None or item.status != ItemStatus.INDEXED:
                continue  # orphan vector or a delete in flight: reconcile repairs it
            score = float(m.score)
            if by_picture:
                score = self._picture_score(vector, item, default=score)
            scored.append((score, m.id))
        if by_picture:
            scored.sort(key=lambda s: (-s[0], s[1]))
        return [
            self._hit(items[image_id], score, dense=score) for score, image_id in scored[:top_k]
        ]

    def _picture_score(self, vector: Vector, item: CatalogItem, *, default: float) -> float:
        usable = (
            item.embedding is not None
            and item.embedding.shape == vector.shape
            and item.model_id in (None, self._model_id)
        )
        if not usable or item.embedding is None:
            return default
        return float(vector @ l2_normalise(item.embedding))

    # ----- hybrid (dense + lexical) -------------------------------------------------------------

    def _hybrid(
        self,
        vector: Vector,
        text: str,
        *,
        alpha: float,
        top_k: int,
        filters: Filter | None,
        exclude: set[str],
    ) -> list[Hit]:
        ask = _Fusion(vector, tokenize(text), alpha, top_k, filters, exclude)
        catalog, vectors = self.stores.catalog, self.stores.vectors
        items: dict[str, CatalogItem] = {}
        if isinstance(catalog, LexicalCatalog):
            scored = self._fused_locally(catalog, ask)
        elif vectors.hybrid:
            scored, items = self._fused_by_index(vectors, ask)
        else:  # an index that cannot match words (a cosine Pinecone index): dense only
            return self._query(vector, top_k=top_k, filters=filters, exclude=exclude)
        scored.sort(key=lambda s: (-s[0], s[1]))
        hits: list[Hit] = []
        for start in range(0, len(scored), top_k + 2):  # usually one catalog read, or none
            page = scored[start : start + top_k + 2]
            missing = [image_id for _, image_id, _, _ in page if image_id not in items]
            if missing:
                items.update(catalog.get_many(missing))
            for score, image_id, d, lex in page:
                item = items.get(image_id)
                if item is None or item.status != ItemStatus.INDEXED:
                    continue  # an orphan vector or a delete in flight: reconcile repairs it
                hits.append(self._hit(item, score, dense=d, lexical=lex))
                if len(hits) == top_k:
                    return hits
        return hits

    def _fused_locally(
        self, catalog: LexicalCatalog, ask: _Fusion
    ) -> list[tuple[float, str, float, float]]:
        """The embedded home: the exact scan's and FTS5's best candidates, each scored on both
        sides (dense from the index's own vectors, lexical from the catalog's stored words).
        Two catalog reads (the statistics, cached while the catalog's words stay the same; the
        FTS5 matches with the dense candidates' words) and one index read (the vectors of the
        candidates only the words found)."""
        ns, vectors = self.stores.namespace, self.stores.vectors
        k = vectors.capped(max(ask.k, self.settings.search.candidates))
        stats = catalog.lexical_stats(ask.tokens)
        dense = {
            m.id: float(m.score)
            for m in vectors.query(
                ask.vector, top_k=k, filter=ask.filters, include_metadata=False, namespace=ns
            )
        }
        found = catalog.lexical_matches(_selective(ask.tokens, stats), limit=k, also=list(dense))
        terms = dict(found)
        records = [
            record
            for record in vectors.fetch([i for i in terms if i not in dense], namespace=ns).values()
            # index results are filtered already; word matches are filtered here
            if not ask.filters or matches(ask.filters, record.metadata)
        ]
        if records:  # one matrix product, not a normalisation per candidate
            cosines = l2_normalise(np.stack([r.values for r in records])) @ ask.vector
            dense.update(zip([r.id for r in records], cosines.tolist(), strict=True))
        return ask.scored(dense, terms, query_weights(ask.tokens, stats))

    def _fused_by_index(
        self, vectors: VectorIndex, ask: _Fusion
    ) -> tuple[list[tuple[float, str, float, float]], dict[str, CatalogItem]]:
        """The AWS home: one sparse-dense Pinecone query ranks; each hit's two parts are then
        recomputed from its catalog item (read once, and kept for the hits), so the response
        can show them."""
        weights = query_weights(ask.tokens, self._fitted_stats())
        found = vectors.query_hybrid(
            ask.vector,
            SparseVector(*sparse_query(weights)),
            alpha=ask.alpha,
            top_k=vectors.capped(ask.k),
            filter=ask.filters,
            namespace=self.stores.namespace,
        )
        items = self.stores.catalog.get_many([m.id for m in found if m.id not in ask.exclude])
        terms = {image_id: tokenize(lexical_text(item)) for image_id, item in items.items()}
        dense = self._dense_from_items(ask.vector, items)
        for m in found:
            if m.id in items and m.id not in dense:
                # another model's item: the index's fused score is all there is
                lex, a = lexical_score(weights, terms[m.id]), ask.alpha
                dense[m.id] = (float(m.score) - (1.0 - a) * lex) / a if a > 0 else 0.0
        return ask.scored(dense, terms, weights), items

    @property
    def _model_id(self) -> str:
        """The embedder's id, read once: it is a hash of the bundle's files."""
        if self._model_id_cache is None:
            self._model_id_cache = self.embedder.model_id
        return self._model_id_cache

    def _dense_from_items(
        self, vector: Vector, items: Mapping[str, CatalogItem]
    ) -> dict[str, float]:
        """The dense score the index would give each item: its document vector, rebuilt from
        the catalog in one matrix product (items embedded by another model are left out)."""
        usable = [
            item
            for item in items.values()
            if item.embedding is not None
            and item.embedding.shape == vector.shape
            and item.model_id in (None, self._model_id)
        ]
        if not usable:
            return {}
        images = np.stack([np.asarray(item.embedding, dtype=np.float32) for item in usable])
        docs = document_vectors(images, [item.text_embedding for item in usable])
        return dict(zip([item.image_id for item in usable], (docs @ vector).tolist(), strict=True))

    def _hit(
        self,
        item: CatalogItem,
        score: float,
        *,
        dense: float | None = None,
        lexical: float | None = None,
    ) -> Hit:
        return Hit(
            image_id=item.image_id,
            score=float(score),
            key=item.key,
            image_url=self.stores.blobs.url(item.key),
            display_name=item.display_name,
            tags=dict(item.tags),
            dense_score=dense,
            lexical_score=lexical,
        )

    def _fitted_stats(self) -> LexicalStats:
        """The AWS home's document frequencies, as ``reindex`` last fitted them; without them
        every query word weighs the same."""
        with self._tags_lock:
            if self._stats is None or time.monotonic() - self._stats[0] > _CAL_TTL_S:
                self._stats = (time.monotonic(), load_stats(self.stores, self.settings))
            return self._stats[1]

    def _is_weak(self, hits: list[Hit], threshold: float | None) -> bool:
        if not hits:
            return True
        best = hits[0]
        if best.lexical_score is not None and (
            best.lexical_score >= self.settings.search.lexical_match
        ):
            return False
        if threshold is None:
            return False
        dense = best.dense_score if best.dense_score is not None else best.score
        return dense < threshold


def _selective(tokens: list[str], stats: LexicalStats) -> list[str]:
    """The query words worth a full-text lookup: those in at most COMMON_SHARE of the catalog
    (a word in half of it, "women", "summer", costs FTS5 most and ranks least), else the
    rarest. Common words still count in every candidate's score."""
    rare = [t for t in tokens if stats.df.get(t, 0) <= COMMON_SHARE * stats.n_docs]
    return rare or sorted(tokens, key=lambda t: stats.df.get(t, 0))[:1]


def combine(parts: list[tuple[float, Vector]]) -> Vector:
    """Weighted sum of normalised vectors, normalised again; refuses a degenerate query."""
    if not parts or all(w <= 0 for w, _ in parts):
        raise InvalidInput("the query needs a positive image or text weight", field="weights")
    total = np.zeros_like(parts[0][1], dtype=np.float32)
    for weight, vec in parts:
        total += np.float32(weight) * l2_normalise(vec)
    if float(np.linalg.norm(total)) < 1e-6:
        raise InvalidInput("the weighted query vectors cancel out", field="weights")
    return l2_normalise(total)
