"""The words' side of the UI: example queries from the catalog's own vocabulary, the
words-vs-picture slider, and "no close match" instead of weak results shown as answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import APP
from tests.ui.error_server import Behaviour, error_server
from tests.ui.live_api import LiveApi, live_api
from tests.ui.test_app_search import app_for, assert_clean, result_names, text_search

pytestmark = pytest.mark.slow


def test_suggestions_are_the_catalogs_own_words_and_each_finds_something(
    live_api_server: LiveApi,
) -> None:
    at = app_for(live_api_server)
    pairs = {
        f"{i.tags['baseColour']} {i.tags['articleType']}".lower(): i.display_name
        for i in live_api_server.items
    }
    labels = [b.label for b in at.button if b.key and b.key.startswith("suggest_")]
    assert labels and set(labels) <= set(pairs)  # not the built-in list: the catalog's
    chosen = next(b for b in at.button if b.key and b.key.startswith("suggest_"))
    at = chosen.click().run()
    assert_clean(at)
    assert result_names(at)[0] == pairs[chosen.label]


def test_the_words_end_of_the_slider_ranks_by_the_names(live_api_server: LiveApi) -> None:
    at = app_for(live_api_server)
    at.slider(key="alpha").set_value(0.0)
    at = text_search(at, "court sneakers")  # only one name says "court"
    assert_clean(at)
    assert result_names(at)[0] == "White Court Sneakers"
    assert not at.warning  # its words match: an answer


def test_the_sliders_start_at_the_apis_defaults(tmp_path: Path, tiny_bundle: Path) -> None:
    from fashion_search import query

    # A deployment whose alpha is not the settings' default: the UI starts at that one.
    with live_api(tmp_path / "home", tiny_bundle, alpha=0.3) as api:
        at = app_for(api)
        assert at.slider(key="alpha").value == 0.3
        weights = [at.slider(key=k).value for k in ("w_image", "w_text", "w_negative")]
        assert weights == [query.W_IMAGE, query.W_TEXT, query.W_NEGATIVE]
        at = text_search(at, "court sneakers")
        assert_clean(at)
        # What the slider sent ranks as a query that leaves alpha to the API.
        left_out = requests.post(
            f"{api.url}/get_image_by_text",
            json={"text": "court sneakers"},
            headers={"X-API-Key": api.key},
            timeout=30,
        ).json()
    assert left_out["alpha"] == 0.3
    assert result_names(at)[0] == left_out["results"][0]["display_name"]


def test_a_weak_match_says_so_instead_of_posing_as_an_answer() -> None:
    body = {
        "results": [
            {"image_id": "1", "score": 0.2, "display_name": "White Sneakers", "tags": {},
             "image_url": None, "key": None},
        ],
        "model_id": "stub",
        "took_ms": 3.0,
        "weak_match": True,
    }  # fmt: skip
    with error_server(Behaviour(status=200, raw_body=json.dumps(body).encode())) as server:
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.secrets["FASHION_SEARCH_UI_API_URL"] = f"http://127.0.0.1:{server.server_port}"
        at.secrets["FASHION_SEARCH_UI_API_KEY"] = "k"
        at = text_search(at.run(), "leather jacket")
    assert not at.exception
    assert [w.value for w in at.warning] == ["No close match — showing the nearest."]
    assert any(c.value.startswith("1 nearest items") for c in at.caption)
    assert not any(c.value.endswith("matches") or " matches " in c.value for c in at.caption)
