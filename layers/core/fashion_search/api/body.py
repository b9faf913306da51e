"""Request bodies: one route may take JSON or multipart, so bodies are parsed here by hand.

Limits: the whole body is capped by ``BodyLimitMiddleware`` (Content-Length checked before
reading, and counted while streaming, since Content-Length can lie or be absent); a multipart
form takes one file and a few fields (starlette's ``max_fields`` / ``max_files``), so a body with
2,000 fields is refused before it is spooled.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fashion_search.api.errors import error_response
from fashion_search.api.schemas import Filters
from fashion_search.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
MULTIPART = "multipart/form-data"
MAX_FORM_FIELDS = 16
# Form fields are parsed as strictly as JSON bodies: ASCII digits only, so "true", "1.0", " 2",
# "1_0" and other scripts' digits (all accepted by int()/float()) are refused like JSON's true.
_INT: Final = re.compile(r"-?[0-9]{1,18}")
_FLOAT: Final = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
# The JSON parser of the JSON bodies (pydantic-core), with its nesting limit: a form's filters
# string meets the same limits instead of Python's recursion limit.
_FILTERS: Final = TypeAdapter(Filters)


def body_cap(max_upload_bytes: int) -> int:
    """Bytes a request body may have: an upload as base64 JSON (4/3) plus room for the rest."""
    return max_upload_bytes * 4 // 3 + 64 * 1024


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media_type(request: Request, *allowed: str) -> str:
    kind = media_type(request)
    if kind not in allowed and not (JSON in allowed and kind.endswith("+json")):
        got = kind or "no Content-Type"
        raise UnsupportedMediaType(f"{got} is not accepted here; send {' or '.join(allowed)}")
    return JSON if kind.endswith("json") else kind


def validation_error(exc: ValidationError) -> InvalidInput:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    message = f"{field}: {first['msg']}" if field else first["msg"]
    return InvalidInput(message, field=field)


async def read_json(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise validation_error(exc) from exc


async def read_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except HTTPException as exc:  # starlette's MultiPartException (too many fields, malformed)
        raise InvalidInput(f"malformed multipart body: {exc.detail}", field=None) from exc


async def form_file(form: FormData, name: str, *, max_bytes: int) -> bytes | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, UploadFile):
        raise InvalidInput(f"{name} must be a file part", field=name)
    data = await value.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the upload is over {max_bytes} bytes", field=name)
    return data


def form_value(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a text field", field=name)
    return value


def form_int(form: FormData, name: str) -> int | None:
    value = form_value(form, name)
    if value is None:
        return None
    if not _INT.fullmatch(value):
        raise InvalidInput(f"{name} must be an integer (ASCII digits)", field=name)
    return int(value)


def form_float(form: FormData, name: str) -> float | None:
    value = form_value(form, name)
    if value is None:
        return None
    number = float(value) if _FLOAT.fullmatch(value) else math.nan
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite decimal number", field=name)
    return number


def form_filters(form: FormData) -> dict[str, Any] | None:
    value = form_value(form, "filters")
    if value is None or not value.strip():
        return None
    try:
        return _FILTERS.validate_json(value)
    except ValidationError as exc:
        why = exc.errors()[0]["msg"]
        raise InvalidInput(f"filters must be a JSON object: {why}", field="filters") from exc


class BodyLimitMiddleware:
    """413 for bodies over ``max_body`` bytes: declared (before reading) or actually streamed."""

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            status, code = (
                (413, "payload_too_large") if declared.isdigit() else (400, "bad_request")
            )
            message = f"the request body is over {self.max_body} bytes"
            if status == 400:
                message = "malformed Content-Length header"
            await error_response(status, code, message)(scope, receive, send)
            return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    # Raised inside the route's body read; the API's handler turns it into 413.
                    raise PayloadTooLarge(f"the request body is over {self.max_body} bytes")
            return message

        await self.app(scope, capped_receive, send)
