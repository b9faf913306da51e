"""Where the UI finds its API: Streamlit secrets first, then the environment, then defaults.

The UI is hosted apart from the API (Streamlit Community Cloud, a Fargate task), so it has its
own configuration, read in this one function. The same names work in ``secrets.toml`` (root
level) and as environment variables, so a Community Cloud secret and an ECS task variable are
spelled alike.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

log = logging.getLogger(__name__)
MiB = 1024 * 1024
ENV_API_URL = "FASHION_SEARCH_UI_API_URL"
ENV_API_KEY = "FASHION_SEARCH_UI_API_KEY"
ENV_TIMEOUT = "FASHION_SEARCH_UI_TIMEOUT_S"
ENV_MAX_UPLOAD = "FASHION_SEARCH_UI_MAX_UPLOAD_MB"
DEFAULT_API_URL = "http://127.0.0.1:8000"
# A cold Lambda loads the model before answering; 20 s covers that without hanging forever.
DEFAULT_TIMEOUT_S = 20.0
# The API refuses uploads over 4 MiB (Lambda's 6 MB payload after base64); keep in step with
# settings.limits.max_upload_bytes and server.maxUploadSize in .streamlit/config.toml.
DEFAULT_MAX_UPLOAD_MB = 4


@dataclass(frozen=True, slots=True)
class UiConfig:
    api_url: str
    api_key: str | None
    timeout_s: float
    max_upload_mb: int

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * MiB

    @property
    def key_fingerprint(self) -> str:
        """Part of every cache key, so results fetched with one key are never shown to another."""
        return hashlib.sha256((self.api_key or "").encode()).hexdigest()[:16]


def _secrets() -> Mapping[str, Any]:
    # st.secrets raises when no secrets.toml exists anywhere; that just means "use the env".
    try:
        return {k: v for k, v in st.secrets.items() if not isinstance(v, Mapping)}
    except FileNotFoundError:  # StreamlitSecretNotFoundError subclasses it
        return {}


def _pick(secrets: Mapping[str, Any], name: str) -> str | None:
    value = secrets.get(name)
    if value is None or str(value).strip() == "":
        value = os.environ.get(name)
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip()


def _number(secrets: Mapping[str, Any], name: str, default: float) -> float:
    raw = _pick(secrets, name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default


def load_config() -> UiConfig:
    """Read the UI's settings; a malformed number falls back to its default (named in the log)."""
    secrets = _secrets()
    api_url = (_pick(secrets, ENV_API_URL) or DEFAULT_API_URL).rstrip("/")
    timeout_s = _number(secrets, ENV_TIMEOUT, DEFAULT_TIMEOUT_S)
    max_upload_mb = int(_number(secrets, ENV_MAX_UPLOAD, DEFAULT_MAX_UPLOAD_MB))
    return UiConfig(
        api_url=api_url,
        api_key=_pick(secrets, ENV_API_KEY),
        timeout_s=max(timeout_s, 0.1),
        max_upload_mb=max(max_upload_mb, 1),
    )
