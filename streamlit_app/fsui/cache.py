"""API calls behind ``st.cache_data``: one entry per distinct request, errors never cached.

The cached functions take the request's fingerprint (and the API URL and a digest of the key) as
their hashed arguments; the objects themselves ride along unhashed (leading underscore), so a
4 MB upload is hashed once, by the fingerprint, not again by Streamlit.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from fsui.client import ApiClient
from fsui.models import SearchRequest, SearchResponse

# Results change only when the catalog does; ten minutes keeps repeated clicks instant.
RESULTS_TTL_S = 600
# Tags and health are cheap, but the catalog grows: refresh them every minute.
TAGS_TTL_S = 60


@st.cache_data(ttl=RESULTS_TTL_S, max_entries=256, show_spinner=False)
def _search(
    api_url: str,
    key_fingerprint: str,
    fingerprint: str,
    *,
    _client: ApiClient,
    _request: SearchRequest,
) -> SearchResponse:
    return _client.search(_request)


@st.cache_data(ttl=TAGS_TTL_S, max_entries=8, show_spinner=False)
def _tags(api_url: str, key_fingerprint: str, *, _client: ApiClient) -> dict[str, list[str]]:
    return _client.tags()


@st.cache_data(ttl=TAGS_TTL_S, max_entries=8, show_spinner=False)
def _health(api_url: str, *, _client: ApiClient) -> dict[str, Any]:
    return _client.health()


def search(client: ApiClient, request: SearchRequest) -> SearchResponse:
    cfg = client.config
    return _search(
        cfg.api_url, cfg.key_fingerprint, request.fingerprint(), _client=client, _request=request
    )


def tags(client: ApiClient) -> dict[str, list[str]]:
    return _tags(client.config.api_url, client.config.key_fingerprint, _client=client)


def health(client: ApiClient) -> dict[str, Any]:
    return _health(client.config.api_url, _client=client)
