"""The HTTP API: ``create_app(settings)`` (FastAPI), served by uvicorn locally and Mangum in AWS."""

from fashion_search.api.app import create_app

__all__ = ["create_app"]
