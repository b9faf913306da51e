"""Search core: text, image and multimodal queries -> vector query -> catalog join.

Routes and the CLI parse and wire; everything a query does happens here, the same in both homes.

Multimodal queries combine L2-normalised vectors as
``q = w_img * img + w_txt * txt - w_neg * neg`` and L2-normalise ``q`` again, so the weights are
relative: (1, 1, 0) is the midpoint of image and text on the sphere, a larger ``w_txt`` pulls the
result toward the text, and the negative text pushes away from what it describes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fashion_search.errors import InvalidInput, NotFound, PayloadTooLarge
from fashion_search.model.base import Embedder, l2_normalise
from fashion_search.settings import Settings
from fashion_search.types import TAG_FIELDS, CatalogItem, Filter, ItemStatus, Vector

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
_DATA_URL = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,", re.IGNORECASE)


@dataclass(slots=True, frozen=True)
class Hit:
    image_id: str
    score: float
    key: str
    image_url: str
    display_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class SearchResult:
    hits: list[Hit]
    model_id: str
    took_ms: float


@dataclass(slots=True)
class Query:
    """A multimodal query; at least one of image/text must be present."""

    text: str | None = None
    negative_text: str | None = None
    image: bytes | None = None
    image_url: str | None = None
    image_id: str | None = None
    w_image: float = 1.0
    w_text: float = 1.0
    w_negative: float = 0.5
    top_k: int | None = None
    filters: Filter | None = None


def has_visible_text(value: str) -> bool:
    """True when ``value`` has a character a person can see (not only NUL, U+FEFF, spaces...)."""
    return any(
        not ch.isspace()
        and ch not in _BLANK_LETTERS
        and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
        for ch in value
    )


def decode_base64_image(value: str, *, max_bytes: int, field_name: str = "image_base64") -> bytes:
    """Standard or URL-safe base64, padded or not, with or without a ``data:image/..`` prefix."""
    text = _DATA_URL.sub("", value.strip(), count=1)
    text = re.sub(r"\s+", "", text)
    if not text:
        raise InvalidInput(f"{field_name} is empty", field=field_name)
    if len(text) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(
            f"{field_name} decodes to more than {max_bytes} bytes", field=field_name
        )
    if not re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", text):
        raise InvalidInput(f"{field_name} is not valid base64", field=field_name)
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field_name} is not valid base64", field=field_name) from exc


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

    # ----- public queries -------------------------------------------------------------------

    def by_text(
        self, text: str, *, top_k: int | None = None, filters: Filter | None = None
    ) -> SearchResult:
        k = 1 if top_k is None else top_k
        return self.search(Query(text=text, w_image=0.0, top_k=k, filters=filters))

    def by_image(
        self, image: bytes, *, top_k: int | None = None, filters: Filter | None = None
    ) -> SearchResult:
        k = 3 if top_k is None else top_k
        return self.search(Query(image=image, w_text=0.0, top_k=k, filters=filters))

    def search(self, q: Query) -> SearchResult:
        start = time.perf_counter()
        self._check_query(q)
        filters = self.validate_filters(q.filters)
        has_image = any(x is not None for x in (q.image, q.image_url, q.image_id))
        top_k = q.top_k if q.top_k is not None else (3 if has_image else 1)
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
        hits = self._query(vector, top_k=top_k, filters=filters, exclude=exclude)
        took = (time.perf_counter() - start) * 1000.0
        return SearchResult(hits=hits, model_id=self.embedder.model_id, took_ms=round(took, 3))

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
        if q.image is not None and len(q.image) > self.settings.limits.max_upload_bytes:
            cap = self.settings.limits.max_upload_bytes
            raise PayloadTooLarge(f"the image is over {cap} bytes", field="file")
        for name in ("w_image", "w_text", "w_negative"):
            w = getattr(q, name)
            if not np.isfinite(w) or w < 0:
                raise InvalidInput(f"weight {name} must be a finite number >= 0", field="weights")

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
        embedded = self.embedder.embed_images([data])
        if not embedded.ok(0):
            raise embedded.errors[0]
        digest = hashlib.sha256(data).hexdigest()
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
        self, vector: Vector, *, top_k: int, filters: Filter | None, exclude: set[str]
    ) -> list[Hit]:
        # Ask for more than top_k so that dropping the query's own image (and vectors whose
        # catalog item is gone) still leaves top_k hits.
        k = min(top_k + len(exclude) + 2, 10_000)
        matches = self.stores.vectors.query(
            vector, top_k=k, filter=filters, include_metadata=True, namespace=self.stores.namespace
        )
        matches = [m for m in matches if m.id not in exclude]
        items = self.stores.catalog.get_many([m.id for m in matches])
        hits: list[Hit] = []
        for m in matches:
            item = items.get(m.id)
            if item is None or item.status != ItemStatus.INDEXED:
                continue  # orphan vector or a delete in flight: reconcile repairs it
            hits.append(
                Hit(
                    image_id=m.id,
                    score=float(m.score),
                    key=item.key,
                    image_url=self.stores.blobs.url(item.key),
                    display_name=item.display_name,
                    tags=dict(item.tags),
                )
            )
            if len(hits) == top_k:
                break
        return hits


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
