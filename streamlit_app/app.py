"""fashion-search UI: find clothes by words or by picture. Talks to the API over HTTP only.

Run it with ``streamlit run streamlit_app/app.py`` (the API URL and key come from
``FASHION_SEARCH_UI_API_URL`` / ``FASHION_SEARCH_UI_API_KEY``, in secrets.toml or the environment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import streamlit as st
from fsui import cache
from fsui.client import ApiClient, ApiError
from fsui.components import empty_state, filter_sidebar, query_preview, results_grid, show_error
from fsui.config import UiConfig, load_config
from fsui.models import Query, QueryDefaults, Result, SearchRequest
from streamlit.runtime.uploaded_file_manager import UploadedFile

log = logging.getLogger("fashion_search_ui")
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "gif"]
# The UI's own choices (a grid of 8, at most 6 rows); the API's defaults come from the API.
MAX_TOP_K = 48
DEFAULT_TOP_K = 8


def set_query(query: Query) -> None:
    st.session_state["query"] = query


def pick_suggestion(text: str) -> None:
    # Also fill the box, so the person sees what ran and can edit it.
    st.session_state["text_query"] = text
    set_query(Query(text=text, label=text))


def more_like(result: Result) -> None:
    name = result.display_name or result.image_id
    set_query(
        Query(image_id=result.image_id, label=f"More like: {name}", preview_url=result.image_url)
    )


def image_source(upload: UploadedFile | None, url: str, config: UiConfig) -> Query | None:
    """The image part of a query from an upload or a URL; None (and a message) if unusable."""
    if upload is not None:
        data = upload.getvalue()
        if len(data) > config.max_upload_bytes:
            mb = len(data) / (1024 * 1024)
            st.warning(
                f"“{upload.name}” is {mb:.1f} MB; the limit is {config.max_upload_mb} MB. "
                "Try a smaller photo or a screenshot of it.",
                icon="⚠️",
            )
            return None
        return Query(image=data, image_name=upload.name, label=upload.name)
    url = url.strip()
    if url:
        if not url.lower().startswith(("http://", "https://")):
            st.warning("The image URL must start with http:// or https://.", icon="⚠️")
            return None
        return Query(image_url=url, label=url)
    st.warning("Upload a photo or paste an image URL first.", icon="⚠️")
    return None


Filters = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class Sidebar:
    top_k: int
    filters: Filters
    alpha: float | None  # None: the API's default (it could not be read)
    defaults: QueryDefaults | None


def sidebar(client: ApiClient) -> Sidebar:
    with st.sidebar:
        st.header("Fashion search")
        options: dict[str, list[str]] = {}
        defaults: QueryDefaults | None = None
        try:
            info = cache.health(client)
            size = info.get("index_size")
            st.caption(f"Connected · {size} items" if size is not None else "Connected")
            options = cache.tags(client)
            defaults = cache.query_defaults(client)
        except ApiError as exc:
            st.caption(f"API: {exc.kind.replace('_', ' ')}")
        top_k = st.slider("Results", 1, MAX_TOP_K, DEFAULT_TOP_K, key="top_k")
        alpha = None
        if defaults is not None:  # without the API's default the API picks alpha itself
            alpha = st.slider(
                "Match words ↔ picture",
                0.0,
                1.0,
                defaults.alpha,
                0.05,
                key="alpha",
                help="0: only products whose name or tags hold your words; 1: only what the "
                "pictures look like. In between, both count.",
            )
        st.subheader("Filters")
        filters = filter_sidebar(options)
    return Sidebar(int(top_k), filters, None if alpha is None else float(alpha), defaults=defaults)


def weight_sliders(defaults: QueryDefaults | None) -> tuple[float, float, float] | None:
    """The mixed query's (image, text, negative) weights, starting at the API's defaults;
    None (the API's defaults) when the API could not say what they are."""
    if defaults is None:
        return None
    image, text, negative = defaults.weights
    c1, c2, c3 = st.columns(3)
    w_image = c1.slider("Photo weight", 0.0, 2.0, image, 0.1, key="w_image")
    w_text = c2.slider("Words weight", 0.0, 2.0, text, 0.1, key="w_text")
    w_neg = c3.slider("“Less of” weight", 0.0, 2.0, negative, 0.1, key="w_negative")
    return float(w_image), float(w_text), float(w_neg)


def query_tabs(config: UiConfig, defaults: QueryDefaults | None) -> None:
    text_tab, image_tab, mix_tab = st.tabs(["Describe it", "Search by photo", "Mix photo + words"])
    with text_tab, st.form("text_form", border=False):
        text = st.text_input("What are you looking for?", key="text_query", max_chars=500)
        if st.form_submit_button("Search", type="primary", key="text_submit"):
            if text.strip():
                set_query(Query(text=text.strip(), label=text.strip()))
            else:
                st.warning("Type a few words first, e.g. “blue denim jacket”.", icon="⚠️")
    with image_tab, st.form("image_form", border=False):
        upload = st.file_uploader(
            "Upload a photo",
            type=IMAGE_TYPES,
            key="image_upload",
            max_upload_size=config.max_upload_mb,
        )
        url = st.text_input("…or paste an image URL", key="image_url")
        if st.form_submit_button("Find similar", type="primary", key="image_submit"):
            found = image_source(upload, url, config)
            if found is not None:
                set_query(found)
    with mix_tab, st.form("mix_form", border=False):
        st.caption("Start from a photo and steer it with words: “in red”, “without a collar”.")
        m_upload = st.file_uploader(
            "Photo", type=IMAGE_TYPES, key="mix_upload", max_upload_size=config.max_upload_mb
        )
        m_url = st.text_input("…or an image URL", key="mix_url")
        more = st.text_input("More of", key="mix_text", placeholder="in red")
        less = st.text_input("Less of", key="mix_negative", placeholder="stripes")
        weights = weight_sliders(defaults)
        if st.form_submit_button("Search", type="primary", key="mix_submit"):
            found = image_source(m_upload, m_url, config)
            if found is not None:
                label = " + ".join(p for p in (found.label, more.strip()) if p)
                set_query(
                    Query(
                        image=found.image,
                        image_name=found.image_name,
                        image_url=found.image_url,
                        text=more.strip(),
                        negative_text=less.strip(),
                        weights=weights,
                        label=label,
                    )
                )


def clear_query() -> None:
    st.session_state.pop("query", None)


def results(client: ApiClient, request: SearchRequest) -> None:
    query = request.query
    api_url = client.config.api_url
    title = f"Results for “{query.text.strip()}”" if not query.has_image else "Similar items"
    head, action = st.columns([5, 1], vertical_alignment="bottom")
    head.subheader(title)
    action.button("Start over", key="clear_query", on_click=clear_query, type="tertiary")
    right = st.container()
    if query.has_image:
        left, right = st.columns([1, 4], gap="large")
        with left:
            query_preview(query, api_url)
    with right:
        try:
            with st.spinner("Searching the catalog…"):
                response = cache.search(client, request)
        except ApiError as exc:
            show_error(exc)
            return
        results_grid(response, api_url=api_url, on_more=more_like)


def main() -> None:
    st.set_page_config(page_title="Fashion search", page_icon="👗", layout="wide")
    config = load_config()
    client = ApiClient(config)
    side = sidebar(client)
    st.title("Find it by words or by picture")
    query_tabs(config, side.defaults)
    query: Query | None = st.session_state.get("query")
    if query is None or query.is_empty:
        empty_state(pick_suggestion, catalog_examples(client))
        return
    request = SearchRequest(query=query, top_k=side.top_k, filters=side.filters, alpha=side.alpha)
    results(client, request)


def catalog_examples(client: ApiClient) -> list[str]:
    """The API's example queries, in the catalog's own words; none if it cannot say."""
    try:
        return cache.examples(client)
    except ApiError:
        return []


try:
    main()
except Exception:
    # Never a traceback on screen: log it for the operator, tell the person something useful.
    log.exception("unexpected error in the UI")
    st.error("Something went wrong in the app. Reload the page; if it persists, tell the operator.")
