"""Request and response models of the HTTP API (the contract the Streamlit app codes against).

The request models are the API's query contract: each body (JSON, or a multipart form) is one
model, validated by pydantic, documented in the OpenAPI document from the same model, with its
defaults taken from the core (``fashion_search.query``), and turned into the core's ``Query`` by
its ``to_query()``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from fashion_search.api.uploads import Uploads
from fashion_search.errors import InvalidInput
from fashion_search.images import Picture
from fashion_search.query import TOP_K_IMAGE, TOP_K_TEXT, W_IMAGE, W_NEGATIVE, W_TEXT, Query

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
_SEARCH_TOP_K = f"{_TOP_K} Default {TOP_K_IMAGE} with an image, else {TOP_K_TEXT}."
_WEIGHT = "Relative weight (0..100) of the {} in q = image + text - negative (docs/api.md)."
_FILE = "The query picture (jpeg, png, webp, gif, bmp, tiff)."

# The names of the fields that hold a query picture, per body: a refusal names them.
FILE_FIELD: Final = "file"
BASE64_FIELD: Final = "image_base64"

# Form fields are parsed as strictly as JSON bodies: ASCII digits only, so "true", "1.0", " 2",
# "1_0" and other scripts' digits (all accepted by int()/float()) are refused like JSON's true.
_INT: Final = re.compile(r"-?[0-9]{1,18}")
_FLOAT: Final = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
# The JSON parser of the JSON bodies (pydantic-core), with its nesting limit: a form's filters
# string meets the same limits instead of Python's recursion limit.
_FILTERS_JSON: Final = TypeAdapter(Filters)


def _form_int(value: object) -> object:
    if isinstance(value, str):
        if not _INT.fullmatch(value):
            raise PydanticCustomError("form_int", "must be an integer (ASCII digits)")
        return int(value)
    return value


def _form_float(value: object) -> object:
    if isinstance(value, str):
        number = float(value) if _FLOAT.fullmatch(value) else math.nan
        if not math.isfinite(number):
            raise PydanticCustomError("form_float", "must be a finite decimal number")
        return number
    return value


def _form_filters(value: object) -> object:
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return _FILTERS_JSON.validate_json(value)
        except ValidationError as exc:
            why = str(exc.errors()[0]["msg"])
            raise PydanticCustomError(
                "form_filters", "must be a JSON object: {why}", {"why": why}
            ) from exc
    return value


TopK = Annotated[int, Field(ge=1, strict=True, description=_TOP_K)]
_WEIGHT_RANGE = Field(ge=0, le=100)  # JSON and multipart weights share one range
Weight = Annotated[float, _WEIGHT_RANGE, Field(strict=True)]
Alpha = Annotated[float, Field(ge=0, le=1, description=_ALPHA)]
FormInt = Annotated[int, BeforeValidator(_form_int)]
FormWeight = Annotated[float, _WEIGHT_RANGE, BeforeValidator(_form_float)]
FormFilters = Annotated[
    Filters | None,
    BeforeValidator(_form_filters),
    WithJsonSchema({"type": "string", "description": "JSON-encoded filter. " + _FILTERS}),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormBody(BaseModel):
    """A multipart form: fields it does not know are ignored, as they always were."""

    model_config = ConfigDict(extra="ignore")
    # Its file parts (the rest are text fields).
    FILES: ClassVar[frozenset[str]] = frozenset({FILE_FIELD})


class TextQuery(_Request):
    text: str = Field(description="What to look for, e.g. 'red summer dress'.", min_length=1)
    top_k: TopK = TOP_K_TEXT
    filters: Filters | None = Field(default=None, description=_FILTERS)
    alpha: Alpha | None = None

    def to_query(self) -> Query:
        return Query(
            text=self.text, w_image=0.0, top_k=self.top_k, filters=self.filters, alpha=self.alpha
        )


class SimilarQuery(_Request):
    """Exactly one of ``url``, ``image_base64``, ``image_id``."""

    url: str | None = Field(default=None, description="A public http(s) URL of an image.")
    image_base64: str | None = Field(
        default=None,
        description="Image bytes as standard or URL-safe base64, optionally a data: URL.",
    )
    image_id: str | None = Field(default=None, description="An image already in the catalog.")
    top_k: TopK = TOP_K_IMAGE
    filters: Filters | None = Field(default=None, description=_FILTERS)

    def to_query(self, uploads: Uploads) -> Query:
        given = [n for n in ("url", BASE64_FIELD, "image_id") if getattr(self, n) is not None]
        if len(given) != 1:
            raise InvalidInput(
                "give exactly one of url, image_base64, image_id",
                field=given[1] if given else "url",
            )
        image = self.image_base64
        return Query(
            image=None if image is None else uploads.base64_picture(image, field=BASE64_FIELD),
            image_url=self.url,
            image_id=self.image_id,
            w_text=0.0,
            top_k=self.top_k,
            filters=self.filters,
        )


class SimilarForm(FormBody):
    """``/get_similar_images`` as multipart: the picture and the same options as JSON."""

    file: bytes = Field(description=_FILE)
    top_k: FormInt = Field(default=TOP_K_IMAGE, ge=1, description=_TOP_K)
    filters: FormFilters = None

    def to_query(self, uploads: Uploads) -> Query:
        return Query(
            image=uploads.picture(self.file, field=FILE_FIELD),
            w_text=0.0,
            top_k=self.top_k,
            filters=self.filters,
        )


class Weights(_Request):
    # strict: a number, never true/false or "1" (an int such as 2 is still a float).
    image: Weight = W_IMAGE
    text: Weight = W_TEXT
    negative: Weight = W_NEGATIVE


class SearchQuery(_Request):
    """Any mix of one image source, a text and a negative text; see docs/api.md for weights."""

    text: str | None = Field(default=None, min_length=1)
    image_url: str | None = None
    image_base64: str | None = None
    image_id: str | None = None
    negative_text: str | None = Field(default=None, min_length=1)
    weights: Weights = Field(default_factory=Weights)
    filters: Filters | None = Field(default=None, description=_FILTERS)
    top_k: TopK | None = Field(default=None, description=_SEARCH_TOP_K)
    alpha: Alpha | None = None

    def to_query(self, uploads: Uploads) -> Query:
        image = self.image_base64
        picture = None if image is None else uploads.base64_picture(image, field=BASE64_FIELD)
        w = self.weights
        return _search_query(self, picture, (w.image, w.text, w.negative))


class SearchForm(FormBody):
    """``/search`` as multipart: the weights are flat fields (``weight_text``...)."""

    file: bytes | None = Field(default=None, description=_FILE)
    text: str | None = Field(default=None, min_length=1)
    negative_text: str | None = Field(default=None, min_length=1)
    image_url: str | None = None
    image_id: str | None = None
    weight_image: FormWeight = Field(default=W_IMAGE, description=_WEIGHT.format("image"))
    weight_text: FormWeight = Field(default=W_TEXT, description=_WEIGHT.format("text"))
    weight_negative: FormWeight = Field(
        default=W_NEGATIVE, description=_WEIGHT.format("negative text")
    )
    alpha: Annotated[float | None, Field(ge=0, le=1), BeforeValidator(_form_float)] = Field(
        default=None, description=_ALPHA
    )
    top_k: Annotated[int | None, Field(ge=1), BeforeValidator(_form_int)] = Field(
        default=None, description=_SEARCH_TOP_K
    )
    filters: FormFilters = None

    def to_query(self, uploads: Uploads) -> Query:
        picture = None if self.file is None else uploads.picture(self.file, field=FILE_FIELD)
        weights = (self.weight_image, self.weight_text, self.weight_negative)
        return _search_query(self, picture, weights)


def _search_query(
    body: SearchQuery | SearchForm, image: Picture | None, weights: tuple[float, float, float]
) -> Query:
    """``/search``'s query from either body: the picture decoded, the weights read."""
    w_image, w_text, w_negative = weights
    return Query(
        text=body.text,
        negative_text=body.negative_text,
        image=image,
        image_url=body.image_url,
        image_id=body.image_id,
        w_image=w_image,
        w_text=w_text,
        w_negative=w_negative,
        top_k=body.top_k,
        filters=body.filters,
        alpha=body.alpha,
    )


# Every request body, JSON and multipart: the OpenAPI document's components carry them.
REQUEST_MODELS: Final[tuple[type[BaseModel], ...]] = (
    TextQuery,
    SimilarQuery,
    SimilarForm,
    SearchQuery,
    SearchForm,
)


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
    # Built from the core's ``SearchResult`` by attribute (``from_attributes``): its ``hits``.
    results: list[Hit] = Field(validation_alias=AliasChoices("results", "hits"))
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
