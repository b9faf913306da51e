"""Request and response models of the HTTP API (the contract the Streamlit app codes against)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Filters = dict[str, Any]

_TOP_K = "How many results (1 .. the server's max_top_k); an integer, never true or 2.0."
_FILTERS = (
    'Pinecone-style metadata filter on tag fields, e.g. {"gender": {"$eq": "Women"}, '
    '"baseColour": {"$in": ["Red", "Blue"]}}. Unknown fields or operators -> 422.'
)


_ALPHA = (
    "Picture vs words, 0..1: results rank by alpha * dense (CLIP) score + (1 - alpha) * lexical "
    "score of the query's words in the product's name and tags. 1 = the picture only, 0 = the "
    "words only; default: the server's (FASHION_SEARCH_SEARCH__ALPHA)."
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextQuery(_Request):
    text: str = Field(description="What to look for, e.g. 'red summer dress'.", min_length=1)
    top_k: int = Field(default=1, ge=1, strict=True, description=_TOP_K)
    filters: Filters | None = Field(default=None, description=_FILTERS)
    alpha: float | None = Field(default=None, ge=0, le=1, description=_ALPHA)


class SimilarQuery(_Request):
    """Exactly one of ``url``, ``image_base64``, ``image_id``."""

    url: str | None = Field(default=None, description="A public http(s) URL of an image.")
    image_base64: str | None = Field(
        default=None,
        description="Image bytes as standard or URL-safe base64, optionally a data: URL.",
    )
    image_id: str | None = Field(default=None, description="An image already in the catalog.")
    top_k: int = Field(default=3, ge=1, strict=True, description=_TOP_K)
    filters: Filters | None = Field(default=None, description=_FILTERS)


class Weights(_Request):
    # strict: a number, never true/false or "1" (an int such as 2 is still a float).
    image: float = Field(default=1.0, ge=0, le=100, strict=True)
    text: float = Field(default=1.0, ge=0, le=100, strict=True)
    negative: float = Field(default=0.5, ge=0, le=100, strict=True)


class SearchQuery(_Request):
    """Any mix of one image source, a text and a negative text; see docs/api.md for weights."""

    text: str | None = Field(default=None, min_length=1)
    image_url: str | None = None
    image_base64: str | None = None
    image_id: str | None = None
    negative_text: str | None = Field(default=None, min_length=1)
    weights: Weights = Field(default_factory=Weights)
    filters: Filters | None = Field(default=None, description=_FILTERS)
    top_k: int | None = Field(
        default=None, ge=1, strict=True, description=_TOP_K + " Default 3 with an image, else 1."
    )
    alpha: float | None = Field(default=None, ge=0, le=1, description=_ALPHA)


class Hit(BaseModel):
    image_id: str
    score: float = Field(
        description="Higher is closer: the cosine similarity, or for a query with words "
        "alpha * dense_score + (1 - alpha) * lexical_score."
    )
    dense_score: float | None = Field(
        default=None, description="Cosine similarity of the query to the product's document."
    )
    lexical_score: float | None = Field(
        default=None,
        description="How much of the query's words (by rarity) the product's name and tags "
        "hold: about 1 when all of them, 0 when none; null without a lexical part.",
    )
    display_name: str | None
    tags: dict[str, str]
    image_url: str = Field(description="A URL a browser can open (presigned in AWS).")
    key: str


class SearchResponse(BaseModel):
    results: list[Hit]
    model_id: str
    took_ms: float
    weak_match: bool = Field(
        default=False,
        description="True when a text query's best result neither looks like it (dense score "
        "under weak_below) nor carries its words: the results are the nearest, not a match.",
    )
    weak_below: float | None = Field(
        default=None,
        description="The dense score under which this model's best match is weak (calibrated "
        "on the catalog's own names); null for image queries.",
    )
    alpha: float | None = Field(default=None, description="The alpha used; null without text.")


class Health(BaseModel):
    status: str
    model_id: str
    dim: int
    index_size: int
    home: str
    # What answers vector queries: "exact" or "ann" (embedded; "exact (ann building)" while the
    # graph of a big catalog is built), "pinecone" (AWS).
    vector_engine: str
    index_version: str = Field(
        description="Opaque; changes whenever the index's contents do (a key for result caches)."
    )


class TagFields(BaseModel):
    fields: dict[str, list[str]]
    examples: list[str] = Field(
        default_factory=list,
        description="Example queries made of the catalog's own words (colour + product type "
        "of real products), each of which finds something.",
    )


class ImageItem(BaseModel):
    image_id: str
    key: str
    status: str
    display_name: str | None
    tags: dict[str, str]
    tags_predicted: bool
    content_hash: str | None
    model_id: str | None
    image_url: str
    created_at: float
    updated_at: float


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable name, e.g. invalid_filter.")
    message: str
    field: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


# Multipart forms (described in OpenAPI; parsed by hand so one route takes JSON or multipart).
SIMILAR_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "top_k": {"type": "integer", "minimum": 1},
        "filters": {"type": "string", "description": "JSON-encoded filter"},
    },
}
SEARCH_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "text": {"type": "string", "minLength": 1},
        "negative_text": {"type": "string", "minLength": 1},
        "image_url": {"type": "string"},
        "image_id": {"type": "string"},
        "weight_image": {"type": "number", "minimum": 0, "maximum": 100},
        "weight_text": {"type": "number", "minimum": 0, "maximum": 100},
        "weight_negative": {"type": "number", "minimum": 0, "maximum": 100},
        "alpha": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 1},
        "filters": {"type": "string", "description": "JSON-encoded filter"},
    },
}
