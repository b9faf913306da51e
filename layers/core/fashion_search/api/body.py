"""Request bodies: one route may take JSON or multipart, so the body is read here and validated
by the route's model for that content type (``fashion_search.api.schemas``).

Limits: the whole body is capped by ``BodyLimitMiddleware`` (Content-Length checked before
reading, and counted while streaming, since Content-Length can lie or be absent); a multipart
form takes one file and a few fields (starlette's ``max_fields`` / ``max_files``), so a body with
2,000 fields is refused before it is spooled.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fashion_search.api.errors import error_response
from fashion_search.api.schemas import FormBody
from fashion_search.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=FormBody)
JSON = "application/json"
MULTIPART = "multipart/form-data"
MAX_FORM_FIELDS = 16


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


async def read_form(request: Request, model: type[F], *, max_file_bytes: int) -> F:
    """The form validated by ``model``: its file parts read (up to ``max_file_bytes``), its text
    fields parsed as strictly as JSON (the model's types say how)."""
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except HTTPException as exc:  # starlette's MultiPartException (too many fields, malformed)
        raise InvalidInput(f"malformed multipart body: {exc.detail}", field=None) from exc
    try:
        values = await _form_values(form, model, max_file_bytes=max_file_bytes)
    finally:
        await form.close()
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_error(exc) from exc


async def _form_values(form: FormData, model: type[F], *, max_file_bytes: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in form.items():
        if name not in model.model_fields:
            continue  # a form's unknown fields are ignored
        is_file = isinstance(value, UploadFile)
        if is_file != (name in model.FILES):
            kind = "a file part" if name in model.FILES else "a text field"
            raise InvalidInput(f"{name} must be {kind}", field=name)
        if isinstance(value, UploadFile):
            data = await value.read(max_file_bytes + 1)
            if len(data) > max_file_bytes:
                raise PayloadTooLarge(f"the upload is over {max_file_bytes} bytes", field=name)
            values[name] = data
        else:
            values[name] = value
    return values


async def read_body(
    request: Request, json_model: type[M], form_model: type[F], *, max_file_bytes: int
) -> M | F:
    """The body as ``json_model`` (JSON) or ``form_model`` (multipart), by its Content-Type."""
    kind = require_media_type(request, JSON, MULTIPART)
    if kind == MULTIPART:
        return await read_form(request, form_model, max_file_bytes=max_file_bytes)
    return await read_json(request, json_model)


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
