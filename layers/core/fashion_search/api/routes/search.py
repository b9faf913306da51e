"""The query routes: text, similar image, and the multimodal ``/search``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from fashion_search.api import body
from fashion_search.api.deps import ApiKeyDep, SearcherDep, SettingsDep
from fashion_search.api.errors import ERROR_RESPONSES
from fashion_search.api.schemas import (
    SEARCH_FORM,
    SIMILAR_FORM,
    Hit,
    SearchQuery,
    SearchResponse,
    SimilarQuery,
    TextQuery,
)
from fashion_search.errors import InvalidInput
from fashion_search.search import Query, SearchResult, decode_base64_image
from fashion_search.settings import Settings

router = APIRouter(tags=["search"], dependencies=[ApiKeyDep], responses=ERROR_RESPONSES)


def _request_body(model: str, form: dict[str, Any] | None) -> dict[str, Any]:
    content: dict[str, Any] = {
        body.JSON: {"schema": {"$ref": f"#/components/schemas/{model}"}},
    }
    if form is not None:
        content[body.MULTIPART] = {"schema": form}
    return {"requestBody": {"required": True, "content": content}}


def _response(result: SearchResult) -> SearchResponse:
    hits = [
        Hit(
            image_id=h.image_id,
            score=h.score,
            dense_score=h.dense_score,
            lexical_score=h.lexical_score,
            display_name=h.display_name,
            tags=h.tags,
            image_url=h.image_url,
            key=h.key,
        )
        for h in result.hits
    ]
    return SearchResponse(
        results=hits,
        model_id=result.model_id,
        took_ms=result.took_ms,
        weak_match=result.weak_match,
        weak_below=result.weak_below,
        alpha=result.alpha,
    )


@router.post(
    "/get_image_by_text",
    response_model=SearchResponse,
    summary="The closest image(s) to a text description",
    openapi_extra=_request_body("TextQuery", None),
)
async def get_image_by_text(request: Request, searcher: SearcherDep) -> SearchResponse:
    body.require_media_type(request, body.JSON)
    q = await body.read_json(request, TextQuery)
    query = Query(text=q.text, w_image=0.0, top_k=q.top_k, filters=q.filters, alpha=q.alpha)
    return _response(await run_in_threadpool(searcher.search, query))


@router.post(
    "/get_similar_images",
    response_model=SearchResponse,
    summary="Images similar to an uploaded image, an image URL, base64 bytes or a catalog id",
    openapi_extra=_request_body("SimilarQuery", SIMILAR_FORM),
)
async def get_similar_images(
    request: Request, searcher: SearcherDep, settings: SettingsDep
) -> SearchResponse:
    kind = body.require_media_type(request, body.JSON, body.MULTIPART)
    cap = settings.limits.max_upload_bytes
    if kind == body.MULTIPART:
        form = await body.read_form(request)
        try:
            data = await body.form_file(form, "file", max_bytes=cap)
            if data is None:
                raise InvalidInput("the multipart body needs a file part", field="file")
            top_k = body.form_int(form, "top_k")
            query = Query(
                image=data,
                w_text=0.0,
                top_k=3 if top_k is None else top_k,
                filters=body.form_filters(form),
            )
        finally:
            await form.close()
    else:
        q = await body.read_json(request, SimilarQuery)
        given = [n for n in ("url", "image_base64", "image_id") if getattr(q, n) is not None]
        if len(given) != 1:
            raise InvalidInput(
                "give exactly one of url, image_base64, image_id",
                field=given[1] if given else "url",
            )
        image = _base64(q.image_base64, settings)
        query = Query(
            image=image,
            image_url=q.url,
            image_id=q.image_id,
            w_text=0.0,
            top_k=q.top_k,
            filters=q.filters,
        )
    return _response(await run_in_threadpool(searcher.search, query))


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Multimodal search: image and/or text, negative text, weights, filters",
    openapi_extra=_request_body("SearchQuery", SEARCH_FORM),
)
async def search(request: Request, searcher: SearcherDep, settings: SettingsDep) -> SearchResponse:
    kind = body.require_media_type(request, body.JSON, body.MULTIPART)
    if kind == body.MULTIPART:
        form = await body.read_form(request)
        try:
            query = await _form_query(form, settings)
        finally:
            await form.close()
    else:
        q = await body.read_json(request, SearchQuery)
        query = Query(
            text=q.text,
            negative_text=q.negative_text,
            image=_base64(q.image_base64, settings),
            image_url=q.image_url,
            image_id=q.image_id,
            w_image=q.weights.image,
            w_text=q.weights.text,
            w_negative=q.weights.negative,
            top_k=q.top_k,
            filters=q.filters,
            alpha=q.alpha,
        )
    return _response(await run_in_threadpool(searcher.search, query))


async def _form_query(form: Any, settings: Settings) -> Query:
    defaults = Query()
    weights = {
        name: body.form_float(form, f"weight_{name}") for name in ("image", "text", "negative")
    }
    return Query(
        text=body.form_value(form, "text"),
        negative_text=body.form_value(form, "negative_text"),
        image=await body.form_file(form, "file", max_bytes=settings.limits.max_upload_bytes),
        image_url=body.form_value(form, "image_url"),
        image_id=body.form_value(form, "image_id"),
        w_image=defaults.w_image if weights["image"] is None else weights["image"],
        w_text=defaults.w_text if weights["text"] is None else weights["text"],
        w_negative=defaults.w_negative if weights["negative"] is None else weights["negative"],
        top_k=body.form_int(form, "top_k"),
        filters=body.form_filters(form),
        alpha=body.form_float(form, "alpha"),
    )


def _base64(value: str | None, settings: Settings) -> bytes | None:
    if value is None:
        return None
    return decode_base64_image(value, max_bytes=settings.limits.max_upload_bytes)
