"""A small HTTP client for the fashion-search API. It knows the contract, not the code behind it.

Every failure becomes an :class:`ApiError` whose ``message`` is written for the person at the
screen (what happened, what to do); the API's own message is kept in ``detail``.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from fsui.config import UiConfig
from fsui.models import QueryDefaults, Result, SearchRequest, SearchResponse

# How long to wait for a TCP connection. Short: an API that is down should say so quickly.
CONNECT_TIMEOUT_S = 3.0


class ApiError(Exception):
    """The API could not answer usefully. ``kind`` is stable, ``message`` is for people."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.detail = detail
        self.field = field


def _error_body(response: requests.Response) -> tuple[str | None, str | None]:
    try:
        err = response.json().get("error", {})
        return (str(err["message"]) if err.get("message") else None, err.get("field"))
    except (ValueError, AttributeError, TypeError, KeyError):
        return None, None


def _http_error(response: requests.Response, config: UiConfig) -> ApiError:
    detail, fld = _error_body(response)
    status = response.status_code
    said = f" The API said: {detail}" if detail else ""
    if status == 401:
        msg = (
            "The search API wants an API key and none was sent. Set FASHION_SEARCH_UI_API_KEY "
            "in the app's secrets or environment."
        )
        return ApiError("unauthorized", msg, status=status, detail=detail)
    if status == 403:
        msg = "The search API refused this app's API key. Check FASHION_SEARCH_UI_API_KEY."
        return ApiError("forbidden", msg, status=status, detail=detail)
    if status == 413:
        msg = f"That image is too large for the API (the limit is {config.max_upload_mb} MB).{said}"
        return ApiError("too_large", msg, status=status, detail=detail, field=fld)
    if status in (400, 415, 422):
        where = f" (in {fld})" if fld else ""
        msg = f"The search API could not use this input{where}.{said}"
        return ApiError("invalid", msg, status=status, detail=detail, field=fld)
    if status == 404:
        msg = f"Not found: that item is no longer in the catalog.{said}"
        return ApiError("not_found", msg, status=status, detail=detail, field=fld)
    if status == 429:
        msg = "The search API is busy right now. Wait a few seconds and try again."
        return ApiError("busy", msg, status=status, detail=detail)
    if status == 504:
        # API Gateway gives up after 29 s (a cold start under load, a slow image URL).
        msg = "The search API timed out (HTTP 504). Try again; a second try is usually fast."
        return ApiError("timeout", msg, status=status, detail=detail)
    if status >= 500:
        msg = f"The search API failed (HTTP {status}). Try again in a moment.{said}"
        return ApiError("server", msg, status=status, detail=detail)
    return ApiError("http", f"Unexpected answer from the API (HTTP {status}).{said}", status=status)


def _results(doc: Any) -> tuple[Result, ...]:
    out = []
    for row in doc["results"]:
        tags = row.get("tags") or {}
        out.append(
            Result(
                image_id=str(row["image_id"]),
                score=float(row["score"]),
                display_name=row.get("display_name") or None,
                tags={str(k): str(v) for k, v in tags.items() if v is not None and v != ""},
                image_url=row.get("image_url") or None,
                key=row.get("key") or None,
            )
        )
    return tuple(out)


class ApiClient:
    """One method per thing the UI needs. Holds no state besides the configuration."""

    def __init__(self, config: UiConfig) -> None:
        self.config = config

    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self.config.api_key} if self.config.api_key else {}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.config.api_url}{path}"
        try:
            response = requests.request(
                method,
                url,
                headers=self._headers(),
                timeout=(CONNECT_TIMEOUT_S, self.config.timeout_s),
                **kwargs,
            )
        except requests.Timeout as exc:
            msg = (
                f"The search API did not answer within {self.config.timeout_s:g} s. It may be "
                "starting up; try again in a moment."
            )
            raise ApiError("timeout", msg) from exc
        except requests.RequestException as exc:
            msg = (
                f"Cannot reach the search API at {self.config.api_url}. Check that it is "
                "running and that FASHION_SEARCH_UI_API_URL points at it."
            )
            raise ApiError("unreachable", msg, detail=str(exc)) from exc
        if response.status_code >= 400:
            raise _http_error(response, self.config)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                "bad_response", "The search API answered with something that is not JSON."
            ) from exc

    def health(self) -> dict[str, Any]:
        doc = self._call("GET", "/health")
        return dict(doc) if isinstance(doc, dict) else {}

    def tags(self) -> dict[str, list[str]]:
        """Tag values per field, for the sidebar filters."""
        doc = self._call("GET", "/tags")
        fields = doc.get("fields", {}) if isinstance(doc, dict) else {}
        return {
            str(name): sorted({str(v) for v in values if v is not None and v != ""})
            for name, values in fields.items()
            if isinstance(values, list)
        }

    def search(self, request: SearchRequest) -> SearchResponse:
        q = request.query
        if q.is_empty:
            raise ApiError("invalid", "Type a description or give a photo to search with.")
        endpoint, kwargs = self._route(request)
        doc = self._call("POST", endpoint, **kwargs)
        try:
            results = _results(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ApiError(
                "bad_response", "The search API sent results in an unknown shape."
            ) from exc
        took = doc.get("took_ms")
        return SearchResponse(
            results=results,
            model_id=doc.get("model_id"),
            took_ms=float(took) if isinstance(took, int | float) else None,
            endpoint=endpoint,
            weak_match=doc.get("weak_match") is True,
        )

    def query_defaults(self) -> QueryDefaults:
        """alpha and the weights the API uses when a query leaves them out (its OpenAPI
        document's ``SearchQuery``: the configured alpha, the core's weights)."""
        doc = self._call("GET", "/openapi.json")
        try:
            schemas = doc["components"]["schemas"]
            weights = schemas["Weights"]["properties"]
            image, text, negative = (
                float(weights[n]["default"]) for n in ("image", "text", "negative")
            )
            alpha = float(schemas["SearchQuery"]["properties"]["alpha"]["default"])
            return QueryDefaults(alpha=alpha, weights=(image, text, negative))
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(
                "bad_response", "The search API's OpenAPI document has no query defaults."
            ) from exc

    def examples(self) -> list[str]:
        """Example queries made of the catalog's own words (empty if the API has none)."""
        doc = self._call("GET", "/tags")
        examples = doc.get("examples", []) if isinstance(doc, dict) else []
        return [str(e) for e in examples if isinstance(e, str) and e.strip()]

    def _route(self, request: SearchRequest) -> tuple[str, dict[str, Any]]:
        """Pick the endpoint: the two classic routes when they suffice, /search when mixed."""
        q = request.query
        text, negative = q.text.strip(), q.negative_text.strip()
        filters = request.filter_json()
        if q.image is not None:
            return _multipart(request, mixed=bool(text or negative))
        alpha = {"alpha": request.alpha} if request.alpha is not None and text else {}
        if not q.has_image and not negative:
            body: dict[str, Any] = {"text": text, "top_k": request.top_k} | alpha
            return "/get_image_by_text", {"json": body | ({"filters": filters} if filters else {})}
        body = {"top_k": request.top_k} | ({"filters": filters} if filters else {})
        if not (text or negative):
            body |= {"url": q.image_url} if q.image_url else {"image_id": q.image_id}
            return "/get_similar_images", {"json": body}
        if q.image_url:
            body["image_url"] = q.image_url
        elif q.image_id:
            body["image_id"] = q.image_id
        if text:
            body["text"] = text
        if negative:
            body["negative_text"] = negative
        if q.weights is not None:
            image_w, text_w, negative_w = q.weights
            body["weights"] = {"image": image_w, "text": text_w, "negative": negative_w}
        return "/search", {"json": body | alpha}


def _multipart(request: SearchRequest, *, mixed: bool) -> tuple[str, dict[str, Any]]:
    """Uploads go as multipart: a 4 MB photo stays 4 MB (base64 in JSON would make it 5.3 MB)."""
    q = request.query
    data: dict[str, str] = {"top_k": str(request.top_k)}
    filters = request.filter_json()
    if filters:
        data["filters"] = json.dumps(filters)
    files = {"file": (q.image_name or "upload", q.image)}
    if not mixed:
        return "/get_similar_images", {"files": files, "data": data}
    if q.text.strip():
        data["text"] = q.text.strip()
        if request.alpha is not None:
            data["alpha"] = repr(float(request.alpha))
    if q.negative_text.strip():
        data["negative_text"] = q.negative_text.strip()
    if q.weights is not None:
        for name, weight in zip(("image", "text", "negative"), q.weights, strict=True):
            data[f"weight_{name}"] = repr(float(weight))
    return "/search", {"files": files, "data": data}
