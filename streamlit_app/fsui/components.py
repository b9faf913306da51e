"""The pieces of the page: sidebar filters, the results grid, the query preview, errors."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from urllib.parse import urljoin

import streamlit as st
from PIL import Image

from fsui.client import ApiError
from fsui.models import Query, Result, SearchResponse

# The filters offered in the sidebar, in the order a shopper narrows down, with their labels.
FILTER_FIELDS: tuple[tuple[str, str], ...] = (
    ("gender", "Gender"),
    ("masterCategory", "Category"),
    ("articleType", "Article type"),
    ("baseColour", "Colour"),
    ("season", "Season"),
    ("usage", "Usage"),
)
# Shown when nothing has been searched yet and the API offers no examples of its own (the
# catalog's words, GET /tags); each is a button that runs it.
SUGGESTIONS: tuple[str, ...] = (
    "red summer dress",
    "men's white sneakers",
    "blue denim jeans",
    "black leather handbag",
    "striped cotton t-shirt",
    "gold wrist watch",
)
GRID_COLUMNS = 4
WEAK_MATCH = "No close match — showing the nearest."
# Tags shown under a result, most telling first; the rest are left to the detail.
CARD_TAGS: tuple[str, ...] = ("articleType", "baseColour", "gender", "season", "usage")


def filter_sidebar(options: dict[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Multiselects for the tag fields the catalog has values for; returns the chosen ones."""
    chosen: list[tuple[str, tuple[str, ...]]] = []
    offered = [(name, label) for name, label in FILTER_FIELDS if options.get(name)]
    if not offered:
        st.caption("No filters yet: the catalog has no tagged items, or the API is unreachable.")
    for name, label in offered:
        picked = st.multiselect(label, options[name], key=f"filter_{name}", placeholder="Any")
        if picked:
            chosen.append((name, tuple(sorted(str(p) for p in picked))))
    return tuple(chosen)


def show_error(error: ApiError) -> None:
    """A readable message; the API's own words go in an expander for whoever debugs it."""
    if error.kind in ("unreachable", "timeout", "server", "busy"):
        st.error(error.message, icon="🔌" if error.kind == "unreachable" else "⏳")
    elif error.kind in ("unauthorized", "forbidden"):
        st.error(error.message, icon="🔑")
    else:
        st.warning(error.message, icon="⚠️")


def empty_state(on_pick: Callable[[str], None], examples: Sequence[str] = ()) -> None:
    st.info(
        'Describe what you are looking for ("red summer dress"), upload a photo, or paste an '
        "image URL. Narrow the results with the filters in the sidebar.",
        icon="👗",
    )
    st.caption("Or try one of these:")
    cols = st.columns(3)
    for i, text in enumerate(list(examples)[:6] or SUGGESTIONS):
        cols[i % 3].button(text, key=f"suggest_{i}", on_click=on_pick, args=(text,))


def absolute_url(api_url: str, url: str | None) -> str | None:
    """Result URLs may be relative to the API (the embedded home's /files/...)."""
    if not url:
        return None
    return urljoin(api_url + "/", url)


# The API refuses pictures more elongated than this (``fashion_search.images.MAX_ASPECT_RATIO``,
# checked equal by a test); the preview must not stretch a 1 x 100000 strip to the column's
# width either (a page millions of pixels tall).
MAX_PREVIEW_ASPECT_RATIO = 20


def _previewable(data: bytes) -> str | None:
    """Why ``data`` gets no preview, or None (the header is read; no pixel is decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
            short, long = sorted(img.size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "not a readable image"
    if short <= 0 or long > short * MAX_PREVIEW_ASPECT_RATIO:
        return "too long and thin to show"
    return None


def query_preview(query: Query, api_url: str) -> None:
    """The query image (or text) shown beside its matches."""
    st.markdown("**Your query**")
    image: bytes | str | None = query.image or query.image_url
    if image is None and query.preview_url:
        image = absolute_url(api_url, query.preview_url)
    caption = query.label or query.image_name or "query image"
    why = _previewable(image) if isinstance(image, bytes) else None
    if why is not None:
        # The API will say why it refuses the bytes; the preview just must not crash on them.
        st.caption(f"{caption} (no preview: {why})")
    elif image is not None:
        st.image(image, caption=caption, width="stretch")
    if query.text.strip():
        st.markdown(f"+ “{query.text.strip()}”" if image is not None else f"“{query.text.strip()}”")
    if query.negative_text.strip():
        st.markdown(f"− “{query.negative_text.strip()}”")


def _card(result: Result, *, rank: int, api_url: str, on_more: Callable[[Result], None]) -> None:
    name = result.display_name or result.image_id
    url = absolute_url(api_url, result.image_url)
    with st.container(border=True):
        if url:
            st.image(url, width="stretch", alt=name)
        else:
            st.caption("(no image)")
        st.markdown(f"**{name}**")
        tags = [result.tags[t] for t in CARD_TAGS if result.tags.get(t)]
        if tags:
            st.caption(" · ".join(tags))
        st.caption(f"score {result.score:.3f}")
        st.button(
            "More like this",
            key=f"more_{rank}_{result.image_id}",
            on_click=on_more,
            args=(result,),
            width="stretch",
        )


def results_grid(
    response: SearchResponse, *, api_url: str, on_more: Callable[[Result], None]
) -> None:
    if not response.results:
        st.info("No matches. Loosen the filters in the sidebar or describe it differently.")
        return
    took = f" in {response.took_ms:.0f} ms" if response.took_ms is not None else ""
    if response.weak_match:  # never present the nearest as if it were the answer
        st.warning(WEAK_MATCH, icon="🔍")
        st.caption(f"{len(response.results)} nearest items{took}")
    else:
        st.caption(f"{len(response.results)} matches{took}")
    for start in range(0, len(response.results), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for offset, result in enumerate(response.results[start : start + GRID_COLUMNS]):
            with cols[offset]:
                _card(result, rank=start + offset, api_url=api_url, on_more=on_more)
