"""The few named errors the core raises.

Adapters translate vendor errors (botocore, pinecone, sqlite3, PIL) into these, always with
``raise ... from exc``. The API maps them to HTTP statuses in one place
(``fashion_search.api.errors``); the CLI prints their message; ingest records them as FAILED
reasons (permanent) or retries them (transient).
"""

from __future__ import annotations


class FashionSearchError(Exception):
    """Base class. ``code`` is a stable machine-readable name used in API error bodies."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ConfigError(FashionSearchError):
    """Settings are missing or inconsistent; the message names the setting to fix."""

    code = "config_error"


class BundleError(FashionSearchError):
    """A model bundle is missing a file or is malformed."""

    code = "bad_model_bundle"


class InvalidInput(FashionSearchError):
    """The caller sent something we will never accept (HTTP 422)."""

    code = "invalid_input"


class InvalidFilter(InvalidInput):
    """A metadata filter uses an unknown field or operator, or is malformed."""

    code = "invalid_filter"


class InvalidImage(InvalidInput):
    """Bytes that are not a supported, safe, complete image (decode refused)."""

    code = "invalid_image"


class PayloadTooLarge(InvalidInput):
    """A body, upload, blob or download is over its byte cap (HTTP 413)."""

    code = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    """A content type we do not take (HTTP 415)."""

    code = "unsupported_media_type"


class UnsafeURL(InvalidInput):
    """A URL refused by the SSRF guard: scheme, port, userinfo or a non-public address."""

    code = "unsafe_url"


class FetchError(FashionSearchError):
    """A permitted URL could not be fetched (timeout, HTTP error, not an image)."""

    code = "fetch_failed"


class NotFound(FashionSearchError):
    code = "not_found"


class Unauthorized(FashionSearchError):
    """No API key was sent (HTTP 401)."""

    code = "unauthorized"


class Forbidden(FashionSearchError):
    """A wrong API key was sent (HTTP 403)."""

    code = "forbidden"


class StaleEvent(FashionSearchError):
    """An event older than what the catalog already holds (refused by a conditional write)."""

    code = "stale_event"


class StoreError(FashionSearchError):
    """A store failed permanently (bad request, schema mismatch)."""

    code = "store_error"


class TransientStoreError(StoreError):
    """A store failed in a way worth retrying (throttling, 5xx, timeout)."""

    code = "store_unavailable"


class IndexDamaged(StoreError):
    """The embedded index's files disagree with its slot table (a segment cut short or gone):
    searching it would read garbage or crash, so it is refused until ``reindex`` rebuilds it."""

    code = "index_damaged"


class DiskFull(TransientStoreError):
    """No space left where a store writes; the message says where and what to do."""

    code = "disk_full"
