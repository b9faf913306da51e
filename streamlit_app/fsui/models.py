"""What the UI asks the API and what it gets back: small frozen values, cheap to cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Query:
    """What the person asked for. Filters and top_k come from the sidebar (see SearchRequest)."""

    text: str = ""
    image: bytes | None = None  # an uploaded photo
    image_name: str | None = None
    image_url: str | None = None
    image_id: str | None = None  # "more like this" on a result
    negative_text: str = ""
    # (image, text, negative) weights of a mixed query; None lets the API use its defaults.
    weights: tuple[float, float, float] | None = None
    label: str = ""  # how the UI names the query ("More like Blue Tee")
    preview_url: str | None = None  # the catalog image of image_id, shown beside the matches

    @property
    def has_image(self) -> bool:
        return bool(self.image or self.image_url or self.image_id)

    @property
    def is_empty(self) -> bool:
        return not (self.has_image or self.text.strip() or self.negative_text.strip())


@dataclass(frozen=True, slots=True)
class QueryDefaults:
    """The API's query defaults, read from its OpenAPI document (the API takes them from its
    core), so the sliders start where the API would be without them."""

    alpha: float
    weights: tuple[float, float, float]  # (image, text, negative)


@dataclass(frozen=True, slots=True)
class SearchRequest:
    query: Query
    top_k: int
    # ((field, (value, ...)), ...) sorted, so equal filters make equal cache keys.
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Words vs picture for queries with text (the API's alpha); None: the API's default.
    alpha: float | None = None

    def filter_json(self) -> dict[str, Any]:
        """The filters in the API's (Pinecone's) filter language."""
        out: dict[str, Any] = {}
        for name, values in self.filters:
            if len(values) == 1:
                out[name] = {"$eq": values[0]}
            elif values:
                out[name] = {"$in": list(values)}
        return out

    def fingerprint(self) -> str:
        """A stable digest of everything that changes the answer: the results cache key."""
        q = self.query
        doc = {
            "text": q.text.strip(),
            "image": hashlib.sha256(q.image).hexdigest() if q.image else None,
            "image_url": q.image_url,
            "image_id": q.image_id,
            "negative_text": q.negative_text.strip(),
            "weights": q.weights,
            "top_k": self.top_k,
            "filters": self.filter_json(),
            "alpha": self.alpha,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Result:
    image_id: str
    score: float
    display_name: str | None
    tags: dict[str, str]
    image_url: str | None
    key: str | None


@dataclass(frozen=True, slots=True)
class SearchResponse:
    results: tuple[Result, ...]
    model_id: str | None = None
    took_ms: float | None = None
    endpoint: str = ""
    # The API says the best result neither looks like the words nor carries them.
    weak_match: bool = False
