"""Keys never reach a log: the values of secret-looking query parameters are redacted from
uvicorn's access log (``GET /search?api_key=[redacted]``).

The API reads its key from the ``X-API-Key`` header only, but a client may still put one in the
URL, and uvicorn logs every request's path with its query string.
"""

from __future__ import annotations

import logging
import re
from typing import Final
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"
# Parameter names compared without case, "-" or "_": api_key, X-API-Key, apikey, token, ...
SECRET_NAMES: Final = frozenset(
    {
        "key",
        "apikey",
        "xapikey",
        "token",
        "accesstoken",
        "idtoken",
        "secret",
        "password",
        "auth",
        "authorization",
        "signature",
        "xamzsignature",
        "xamzcredential",
        "xamzsecuritytoken",
    }
)
_PARAM: Final = re.compile(r"(?P<name>[^?&=#\s]+)=(?P<value>[^&#\s]*)")


def _secret(name: str) -> bool:
    return re.sub(r"[-_]", "", unquote_plus(name).lower()) in SECRET_NAMES


def redact_query(text: str) -> str:
    """``text`` with the values of secret-looking parameters after any ``?`` replaced."""
    head, sep, query = text.partition("?")
    if not sep:
        return text

    def hide(m: re.Match[str]) -> str:
        return f"{m['name']}={REDACTED}" if _secret(m["name"]) else m[0]

    return head + sep + _PARAM.sub(hide, query)


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record's string arguments (uvicorn passes the path with its query as one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_query(a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        elif isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_query(record.msg)
        return True


def install_redaction(logger_name: str = ACCESS_LOGGER) -> None:
    """Add the filter to the access logger once. uvicorn's ``dictConfig`` (run after the app is
    built) replaces that logger's handlers but keeps its filters, so this survives ``serve``."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactSecretsFilter) for f in logger.filters):
        logger.addFilter(RedactSecretsFilter())
