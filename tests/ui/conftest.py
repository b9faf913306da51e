"""Fixtures of the UI tests: a real API (session), an image server, the app under AppTest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from tests.ui.live_api import LiveApi, image_server

APP = Path(__file__).resolve().parents[2] / "streamlit_app" / "app.py"
UI_ENV = (
    "FASHION_SEARCH_UI_API_URL",
    "FASHION_SEARCH_UI_API_KEY",
    "FASHION_SEARCH_UI_TIMEOUT_S",
    "FASHION_SEARCH_UI_MAX_UPLOAD_MB",
)


@pytest.fixture(scope="session")
def ui_images(live_api_server: LiveApi) -> Iterator[str]:
    """Base URL of a loopback server holding look-alikes of the seed images at /<image_id>.png."""
    with image_server(
        {f"/{i.image_id}.png": i.lookalike_png() for i in live_api_server.items}
    ) as base:
        yield base


@pytest.fixture(autouse=True)
def _clean_ui_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Results are cached process-wide by st.cache_data; one test's answers must not leak into
    # the next. The UI's env is cleared so only what a test sets is seen.
    for name in UI_ENV:
        monkeypatch.delenv(name, raising=False)
    st.cache_data.clear()
    yield
    st.cache_data.clear()
