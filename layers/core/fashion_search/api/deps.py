"""FastAPI dependencies of the routes, as ``Annotated`` aliases, and the app's one ``Searcher``.

What the searcher is built from (model, stores, process settings) is ``fashion_search.runtime``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from fashion_search.api.auth import HEADER, ApiKeyChecker
from fashion_search.runtime import build_searcher
from fashion_search.search import Searcher
from fashion_search.settings import Settings


class SearcherProvider:
    """Holds the one ``Searcher``: given, or built on first use (thread-safe, built once)."""

    def __init__(
        self,
        settings: Settings,
        *,
        searcher: Searcher | None = None,
        factory: Callable[[Settings], Searcher] = build_searcher,
    ) -> None:
        self._settings = settings
        self._searcher = searcher
        self._factory = factory
        self._lock = threading.Lock()

    def get(self) -> Searcher:
        if self._searcher is None:
            with self._lock:
                if self._searcher is None:
                    self._searcher = self._factory(self._settings)
        return self._searcher


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_searcher(request: Request) -> Searcher:
    # A plain ``def``: FastAPI runs it in the thread pool, so a first-request model load does
    # not block the event loop.
    provider: SearcherProvider = request.app.state.searcher_provider
    return provider.get()


_api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="API key")


def require_api_key(
    request: Request, key: Annotated[str | None, Security(_api_key_header)] = None
) -> None:
    checker: ApiKeyChecker = request.app.state.auth
    checker.check(key)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
ApiKeyDep = Depends(require_api_key)
