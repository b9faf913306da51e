"""API key check for the ``X-API-Key`` header.

Keys come from settings locally and from a Secrets Manager secret (by name, through Powertools
Parameters, cached) in AWS. The secret holds one key as plain text, a JSON list of keys, or a JSON
object with ``api_keys`` (list) or ``api_key``; several keys allow rotation without downtime.
Keys are never logged, and the comparison runs over every key with ``hmac.compare_digest`` so
the time taken does not depend on which key, or how much of it, matched.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable

from fashion_search.errors import ConfigError, Forbidden, Unauthorized
from fashion_search.settings import ApiSettings

logger = logging.getLogger(__name__)

HEADER = "X-API-Key"
SECRET_MAX_AGE_S = 300


def parse_secret(value: str) -> list[str]:
    """The keys in a secret string: plain key, JSON list, or JSON object."""
    text = value.strip()
    if text[:1] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("the API key secret is not valid JSON") from exc
        if isinstance(data, dict):
            data = data.get("api_keys", [data["api_key"]] if "api_key" in data else [])
        if not isinstance(data, list) or not all(isinstance(k, str) for k in data):
            raise ConfigError("the API key secret must hold a key, a list of keys or api_keys")
        return [k for k in data if k]
    return [text] if text else []


def _read_secret(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(name, max_age=SECRET_MAX_AGE_S)
    return value.decode() if isinstance(value, bytes) else str(value)


class ApiKeyChecker:
    """Callable check of one header value; raises ``Unauthorized``/``Forbidden``."""

    def __init__(
        self, settings: ApiSettings, *, read_secret: Callable[[str], str] = _read_secret
    ) -> None:
        self._settings = settings
        self._read_secret = read_secret
        self._lock = threading.Lock()
        self._cached: tuple[float, list[bytes]] | None = None

    @property
    def enabled(self) -> bool:
        return not self._settings.auth_disabled

    def keys(self) -> list[bytes]:
        local = [k.get_secret_value().encode() for k in self._settings.api_keys]
        name = self._settings.api_key_secret_name
        if not name:
            return [k for k in local if k]
        with self._lock:
            # Powertools caches too; this keeps the parsed list and avoids re-parsing per call.
            if self._cached is None or time.monotonic() - self._cached[0] > SECRET_MAX_AGE_S:
                remote = [k.encode() for k in parse_secret(self._read_secret(name))]
                self._cached = (time.monotonic(), remote)
            return [k for k in (*local, *self._cached[1]) if k]

    def check(self, presented: str | None) -> None:
        if not self.enabled:
            return
        keys = self.keys()
        if not keys:
            raise ConfigError(
                "no API keys are configured: set FASHION_SEARCH_API__API_KEYS or "
                "FASHION_SEARCH_API__API_KEY_SECRET_NAME (or AUTH_DISABLED=true for local use)"
            )
        if not presented:
            raise Unauthorized(f"missing {HEADER} header", field=HEADER)
        given = presented.encode()
        matched = False
        for key in keys:  # no early exit: every key is compared every time
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise Forbidden("invalid API key", field=HEADER)
