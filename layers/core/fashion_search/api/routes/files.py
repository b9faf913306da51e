"""``GET /files/{key}``: image bytes of the embedded home's folder store.

Without auth on purpose: browsers load these URLs in ``<img src>`` and cannot send a header
(the AWS home hands out presigned S3 URLs instead, and this route does not exist there).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fashion_search.api.deps import SearcherDep, SettingsDep
from fashion_search.api.errors import ERROR_RESPONSES
from fashion_search.errors import NotFound

router = APIRouter(tags=["files"])

_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}


@router.get(
    "/files/{key:path}",
    response_model=None,
    response_class=Response,
    summary="Image bytes (embedded home)",
    responses={
        200: {"content": {t: {} for t in (*_TYPES.values(), "application/octet-stream")}},
        404: ERROR_RESPONSES[404],
        413: ERROR_RESPONSES[413],
        422: ERROR_RESPONSES[422],
    },
)
async def get_file(key: str, searcher: SearcherDep, settings: SettingsDep) -> Response:
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise NotFound(f"no file {key!r}", field="key")
    data = await run_in_threadpool(
        searcher.stores.blobs.get, key, max_bytes=settings.limits.max_blob_bytes
    )
    from fashion_search.images import sniff_image_type

    kind = sniff_image_type(data)
    media = _TYPES.get(kind or "", "application/octet-stream")
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(content=data, media_type=media, headers=headers)
