"""``fashion-search serve``: the HTTP API under uvicorn, on the home the settings name.

The same ``create_app`` as the Lambda entry. The model and stores load before the port opens, so
``/health`` answering means the API is ready. In the embedded home image URLs point at this
server's ``/files/`` route: ``settings.api.public_url``, else ``http://HOST:PORT``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Annotated

import typer

from fashion_search.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)


def served_settings(settings: Settings, *, host: str | None, port: int | None) -> Settings:
    """``settings`` with the CLI's host/port, and a public URL a browser on this machine opens."""
    api = settings.api.model_copy(
        update={"host": host or settings.api.host, "port": port or settings.api.port}
    )
    if api.public_url is None:
        # A wildcard bind address is not something a browser can open.
        shown = "127.0.0.1" if api.host in ("0.0.0.0", "::", "") else api.host
        shown = f"[{shown}]" if ":" in shown else shown
        api.public_url = f"http://{shown}:{api.port}"
    return settings.model_copy(update={"api": api})


def _ready_app(settings: Settings) -> FastAPI:
    """The app with its model loaded and warmed (``/health`` answering means ready), in a process
    with one BLAS thread (``runtime.limit_blas_threads``)."""
    from fashion_search.api import create_app
    from fashion_search.runtime import limit_blas_threads

    limit_blas_threads()
    app = create_app(settings)
    searcher = app.state.searcher_provider.get()  # load before listening
    searcher.warm()
    log.info("model %s, %d vectors", searcher.embedder.model_id, searcher.index_size())
    return app


def _factory() -> object:
    """uvicorn --reload entry: a fresh app from the environment in the reloading worker."""
    return _ready_app(Settings())


def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default settings.api.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default settings.api.port).")
    ] = None,
    reload: Annotated[
        bool, typer.Option("--reload", help="Restart on code changes (development).")
    ] = False,
) -> None:
    """Run the search API (FastAPI) with uvicorn."""
    import uvicorn

    settings = served_settings(Settings(), host=host, port=port)
    logging.basicConfig(level=settings.log_level)
    if not settings.api.auth_disabled and not (
        settings.api.api_keys or settings.api.api_key_secret_name
    ):
        typer.echo(
            f"warning: no API keys configured; set {ENV_PREFIX}API__API_KEYS='[\"...\"]' "
            f"(or {ENV_PREFIX}API__AUTH_DISABLED=true for local use only)",
            err=True,
        )
    typer.echo(
        f"fashion-search API on http://{settings.api.host}:{settings.api.port} "
        f"(home: {settings.home}, docs: {settings.api.public_url}/docs)"
    )
    if reload:
        # The reloading worker is a new process: it reads its settings from the environment.
        os.environ[f"{ENV_PREFIX}API__HOST"] = settings.api.host
        os.environ[f"{ENV_PREFIX}API__PORT"] = str(settings.api.port)
        os.environ[f"{ENV_PREFIX}API__PUBLIC_URL"] = str(settings.api.public_url)
        uvicorn.run(
            "fashion_search.cli.serve:_factory",
            factory=True,
            host=settings.api.host,
            port=settings.api.port,
            reload=True,
            log_level=settings.log_level.lower(),
        )
        return
    app = _ready_app(settings)
    uvicorn.run(
        app, host=settings.api.host, port=settings.api.port, log_level=settings.log_level.lower()
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
