"""API calls behind ``st.cache_data``: one entry per distinct request, errors never cached.

The cached functions take the request's fingerprint (and the API URL and a digest of the key) as
their hashed arguments; the objects themselves ride along unhashed (leading underscore), so a
4 MB upload is hashed once, by the fingerprint, not again by Streamlit.

Results are also keyed on the index's state (``/health``: ``index_version`` and ``index_size``),
read afresh for each search: the moment an image is indexed, the same query is a new entry and
finds it, while repeats against an unchanged index still come from the cache.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from fsui.client import ApiClient, ApiError
from fsui.models import QueryDefaults, SearchRequest, SearchResponse

# Results change only when the index does (part of the key); ten minutes bounds the rest (a
# catalog row's tags edited without touching its vector).
RESULTS_TTL_S = 600
# Tags and health are cheap, but the catalog grows: refresh them every minute.
TAGS_TTL_S = 60


@st.cache_data(ttl=RESULTS_TTL_S, max_entries=256, show_spinner=False)
def _search(
    api_url: str,
    key_fingerprint: str,
    fingerprint: str,
    index_state: str,
    *,
    _client: ApiClient,
    _request: SearchRequest,
) -> SearchResponse:
    return _client.search(_request)


@st.cache_data(ttl=TAGS_TTL_S, max_entries=8, show_spinner=False)
def _tags(api_url: str, key_fingerprint: str, *, _client: ApiClient) -> dict[str, list[str]]:
    return _client.tags()


@st.cache_data(ttl=TAGS_TTL_S, max_entries=8, show_spinner=False)
def _examples(api_url: str, key_fingerprint: str, *, _client: ApiClient) -> list[str]:
    return _client.examples()


@st.cache_data(ttl=TAGS_TTL_S, max_entries=8, show_spinner=False)
def _query_defaults(api_url: str, *, _client: ApiClient) -> QueryDefaults:
    return _client.query_defaults()


@st.cache_data(ttl=TAGS_TTL_S, max_entries=8, show_spinner=False)
def _health(api_url: str, *, _client: ApiClient) -> dict[str, Any]:
    return _client.health()


def index_state(client: ApiClient) -> str:
    """The index's state from an uncached ``/health`` (one cheap GET per search); "" when the
    API does not say (an older API, or /health failing: the search reports its own error)."""
    try:
        doc = client.health()
    except ApiError:
        return ""
    return f"{doc.get('index_version', '')}/{doc.get('index_size', '')}"


def search(client: ApiClient, request: SearchRequest) -> SearchResponse:
    cfg = client.config
    return _search(
        cfg.api_url,
        cfg.key_fingerprint,
        request.fingerprint(),
        index_state(client),
        _client=client,
        _request=request,
    )


def tags(client: ApiClient) -> dict[str, list[str]]:
    return _tags(client.config.api_url, client.config.key_fingerprint, _client=client)


def examples(client: ApiClient) -> list[str]:
    return _examples(client.config.api_url, client.config.key_fingerprint, _client=client)


def health(client: ApiClient) -> dict[str, Any]:
    return _health(client.config.api_url, _client=client)


def query_defaults(client: ApiClient) -> QueryDefaults:
    return _query_defaults(client.config.api_url, _client=client)
