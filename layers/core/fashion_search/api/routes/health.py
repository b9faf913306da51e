"""``GET /health``: no auth, so load balancers and uptime checks can call it."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fashion_search.api.deps import SearcherDep, SettingsDep
from fashion_search.api.errors import ERROR_RESPONSES
from fashion_search.api.schemas import Health

router = APIRouter(tags=["health"], responses={503: ERROR_RESPONSES[503]})


@router.get("/health", response_model=Health, summary="Model, index size and home")
async def health(searcher: SearcherDep, settings: SettingsDep) -> Health:
    size = await run_in_threadpool(searcher.index_size)
    engine = await run_in_threadpool(searcher.index_engine)
    version = await run_in_threadpool(searcher.index_version)
    return Health(
        status="ok",
        model_id=searcher.embedder.model_id,
        dim=searcher.embedder.dim,
        index_size=size,
        home=str(settings.home),
        vector_engine=engine,
        index_version=version,
    )
