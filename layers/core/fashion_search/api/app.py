"""The FastAPI app factory. ``create_app(settings)`` builds a fresh app; nothing at import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Receive, Scope, Send

from fashion_search.api import errors
from fashion_search.api.access_log import install_redaction
from fashion_search.api.auth import ApiKeyChecker
from fashion_search.api.body import BodyLimitMiddleware, body_cap
from fashion_search.api.deps import SearcherProvider
from fashion_search.api.routes import files, health, images, search
from fashion_search.api.schemas import REQUEST_MODELS
from fashion_search.runtime import build_searcher
from fashion_search.search import Searcher
from fashion_search.settings import Home, Settings

DESCRIPTION = """Search a fashion catalog by text, by image, or both.

Send the `X-API-Key` header on every route except `/health`, `/docs`, `/redoc` and `/files`.
Every error has the body `{"error": {"code", "message", "field"}}`."""


def create_app(
    settings: Settings,
    *,
    searcher: Searcher | None = None,
    searcher_factory: Callable[[Settings], Searcher] = build_searcher,
    auth: ApiKeyChecker | None = None,
) -> FastAPI:
    """The API for ``settings``. ``searcher`` (tests) or ``searcher_factory`` (lazy, once)."""
    base = settings.api.api_gateway_base_path.rstrip("/")
    # /docs (Swagger UI) and /redoc with their scripts, styles and favicon served from the
    # fastapi-offline package under /static-offline-docs: they work on the offline demo, and
    # behind an API Gateway stage (root_path). No CDN, no web fonts (with_google_fonts=False),
    # and no call to Swagger's online validator (validatorUrl null).
    app = FastAPIOffline(
        title="fashion-search",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url="/redoc",
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    app.state.searcher_provider = SearcherProvider(
        settings, searcher=searcher, factory=searcher_factory
    )
    app.state.auth = auth or ApiKeyChecker(settings.api)
    install_redaction()  # keys sent in a URL never reach uvicorn's access log
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_body=body_cap(settings.limits.max_upload_bytes))
    if base:
        app.add_middleware(RootPathMiddleware, root_path=base)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
        )
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(images.router)
    if settings.home == Home.EMBEDDED:
        app.include_router(files.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class RootPathMiddleware:
    """Tells the app it is mounted under an API Gateway stage/base path (``/prod``), so the
    docs page asks for ``/prod/openapi.json``. Mangum strips the prefix from the path; ASGI
    wants ``path`` to include ``root_path`` (Starlette routes on ``path`` minus ``root_path``,
    and a mount such as the docs' static files resolves its files that way), so it is put back.
    """

    def __init__(self, app: ASGIApp, *, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if not (path == self.root_path or path.startswith(self.root_path + "/")):
                path = self.root_path + path
            scope = dict(scope, root_path=self.root_path, path=path)
        await self.app(scope, receive, send)


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's document, plus the request models: a route that takes JSON or multipart reads
    its body itself (``api/body.py``), so FastAPI does not see its models; each operation refers
    to them (``routes/search.py``) and here they join the components, as pydantic writes them."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(model, "validation") for model in REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    requests = defs.get("$defs", {})
    _with_settings(requests, settings)
    components.update(requests)
    return schema


def _with_settings(models: dict[str, Any], settings: Settings) -> None:
    """What this deployment's settings decide, so generated clients (and schemathesis) know it:
    the limits the ``Searcher`` enforces, and alpha's default (``null`` means the setting)."""
    limits = settings.limits
    bounds = {
        "top_k": ("maximum", limits.max_top_k),
        "text": ("maxLength", limits.max_text_chars),
        "negative_text": ("maxLength", limits.max_text_chars),
    }
    for model in models.values():
        props = model.get("properties", {})
        for name, (key, value) in bounds.items():
            for option in props.get(name, {}).get("anyOf", [props.get(name, {})]):
                if option.get("type") in ("integer", "string"):
                    option[key] = value
        if "alpha" in props:
            props["alpha"]["default"] = settings.search.alpha
