"""Catalog items: ``GET /images/{image_id}``, ``GET /tags``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fashion_search.api.deps import ApiKeyDep, SearcherDep
from fashion_search.api.errors import ERROR_RESPONSES
from fashion_search.api.schemas import ImageItem, TagFields

router = APIRouter(tags=["catalog"], dependencies=[ApiKeyDep], responses=ERROR_RESPONSES)


@router.get("/images/{image_id:path}", response_model=ImageItem, summary="One catalog item")
async def get_image(image_id: str, searcher: SearcherDep) -> ImageItem:
    item, url = await run_in_threadpool(searcher.get_item, image_id)
    return ImageItem(
        image_id=item.image_id,
        key=item.key,
        status=str(item.status),
        display_name=item.display_name,
        tags=dict(item.tags),
        tags_predicted=item.tags_predicted,
        content_hash=item.content_hash,
        model_id=item.model_id,
        image_url=url,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


@router.get("/tags", response_model=TagFields, summary="Tag fields and their values (for filters)")
async def get_tags(searcher: SearcherDep) -> TagFields:
    fields = await run_in_threadpool(searcher.tag_values)
    return TagFields(fields=fields, examples=await run_in_threadpool(searcher.example_queries))
