"""The one place where errors become HTTP responses: ``{"error": {"code", "message", "field"}}``.

Every failure the API can produce goes through here, FastAPI's own validation errors, unknown
routes (404) and wrong methods (405) included, so clients parse one shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashion_search import errors as e
from fashion_search.api.schemas import ErrorBody

logger = logging.getLogger(__name__)

# Most specific class first: the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[e.FashionSearchError], int], ...] = (
    (e.PayloadTooLarge, 413),
    (e.UnsupportedMediaType, 415),
    (e.InvalidInput, 422),  # InvalidFilter, InvalidImage, UnsafeURL too
    # A URL the caller chose could not be fetched: their input, not our failure.
    (e.FetchError, 422),
    (e.NotFound, 404),
    (e.Unauthorized, 401),
    (e.Forbidden, 403),
    (e.StaleEvent, 409),
    (e.TransientStoreError, 503),
    (e.StoreError, 502),
    (e.ConfigError, 500),
    (e.BundleError, 500),
)

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": HTTPStatus(code).phrase}
    for code in (400, 401, 403, 404, 413, 415, 422, 500, 502, 503)
}


def status_for(exc: e.FashionSearchError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    headers = {"WWW-Authenticate": "APIKey"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.FashionSearchError)
    status = status_for(exc)
    if status >= 500:
        logger.error("%s on %s: %s", exc.code, request.url.path, exc.message, exc_info=exc)
        message = exc.message if status in (502, 503) else "internal configuration error"
        return error_response(status, exc.code, message, None)
    return error_response(status, exc.code, exc.message, exc.field)


def _field_of(loc: Sequence[object]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = _field_of(first.get("loc", ()))
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return error_response(422, "invalid_input", message, field)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
    }.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))
    message = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    response = error_response(status, code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Details go to the log only; the client gets the stable shape and no internals.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.FashionSearchError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
