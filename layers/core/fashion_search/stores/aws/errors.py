"""botocore errors -> our named errors, shared by the AWS adapters (S3 blobs, DynamoDB catalog).

Each adapter passes its service's own codes (which ones mean "missing", "condition failed",
"retry later"); what is common to every AWS service stays here: any 5xx is transient, and so is
a connection-level failure (timeout, reset, unreachable endpoint).
"""

from __future__ import annotations

from collections.abc import Collection

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from fashion_search.errors import (
    FashionSearchError,
    NotFound,
    StaleEvent,
    StoreError,
    TransientStoreError,
)


def translate_aws_error(
    exc: ClientError | BotoCoreError,
    *,
    service: str,
    what: str,
    transient_codes: Collection[str],
    missing_codes: Collection[str] = (),
    missing_message: str | None = None,
    stale_codes: Collection[str] = (),
) -> FashionSearchError:
    """The error to raise (``from exc``) for ``exc``, raised by ``service`` doing ``what``.

    ``missing_codes`` map to ``NotFound`` (message ``missing_message``, default the generic
    one), ``stale_codes`` (refused conditional writes) to ``StaleEvent``, ``transient_codes`` and
    any 5xx to ``TransientStoreError``; anything else is a permanent ``StoreError``.
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{service} {what} failed: {code}: {error.get('Message', '')}"
        if code in missing_codes:
            return NotFound(missing_message or message)
        if code in stale_codes:
            return StaleEvent(message)
        if code in transient_codes or status >= 500:
            return TransientStoreError(message)
        return StoreError(message)
    if isinstance(exc, ConnectionError | HTTPClientError):  # timeouts, resets, unreachable
        return TransientStoreError(f"{service} {what} failed: {exc}")
    return StoreError(f"{service} {what} failed: {exc}")
