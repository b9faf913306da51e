"""The query routes: text, similar image, and the multimodal ``/search``.

Each reads its body into the request model for its Content-Type, then the model's ``to_query()``
(run in the thread pool: it decodes an uploaded picture) gives the ``Searcher`` its ``Query``.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from fashion_search.api import body
from fashion_search.api.deps import ApiKeyDep, SearcherDep, SettingsDep
from fashion_search.api.errors import ERROR_RESPONSES
from fashion_search.api.schemas import (
    SearchForm,
    SearchQuery,
    SearchResponse,
    SimilarForm,
    SimilarQuery,
    TextQuery,
)
from fashion_search.api.uploads import Uploads
from fashion_search.query import Query
from fashion_search.search import Searcher, SearchResult

router = APIRouter(tags=["search"], dependencies=[ApiKeyDep], responses=ERROR_RESPONSES)


class _WithImage(Protocol):
    def to_query(self, uploads: Uploads) -> Query: ...


def request_body(json_model: type[BaseModel], form_model: type[BaseModel] | None = None) -> Any:
    """The operation's request body, documented from its models (``app.py`` puts every model of
    ``schemas.REQUEST_MODELS`` in the components)."""
    content: dict[str, Any] = {body.JSON: {"schema": _ref(json_model)}}
    if form_model is not None:
        content[body.MULTIPART] = {"schema": _ref(form_model)}
    return {"requestBody": {"required": True, "content": content}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _response(result: SearchResult) -> SearchResponse:
    return SearchResponse.model_validate(result, from_attributes=True)


def _answer(searcher: Searcher, request: _WithImage) -> SearchResponse:
    query = request.to_query(Uploads.for_searcher(searcher))
    return _response(searcher.search(query))


@router.post(
    "/get_image_by_text",
    response_model=SearchResponse,
    summary="The closest image(s) to a text description",
    openapi_extra=request_body(TextQuery),
)
async def get_image_by_text(request: Request, searcher: SearcherDep) -> SearchResponse:
    body.require_media_type(request, body.JSON)
    q = await body.read_json(request, TextQuery)
    return _response(await run_in_threadpool(searcher.search, q.to_query()))


@router.post(
    "/get_similar_images",
    response_model=SearchResponse,
    summary="Images similar to an uploaded image, an image URL, base64 bytes or a catalog id",
    openapi_extra=request_body(SimilarQuery, SimilarForm),
)
async def get_similar_images(
    request: Request, searcher: SearcherDep, settings: SettingsDep
) -> SearchResponse:
    cap = settings.limits.max_upload_bytes
    q = await body.read_body(request, SimilarQuery, SimilarForm, max_file_bytes=cap)
    return await run_in_threadpool(_answer, searcher, q)


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Multimodal search: image and/or text, negative text, weights, filters",
    openapi_extra=request_body(SearchQuery, SearchForm),
)
async def search(request: Request, searcher: SearcherDep, settings: SettingsDep) -> SearchResponse:
    cap = settings.limits.max_upload_bytes
    q = await body.read_body(request, SearchQuery, SearchForm, max_file_bytes=cap)
    return await run_in_threadpool(_answer, searcher, q)
