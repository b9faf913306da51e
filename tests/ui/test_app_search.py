"""The Streamlit app, driven by AppTest, against a real API over HTTP: text, upload, URL,
filters, "more like this", mixed queries and the results cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import APP
from tests.ui.live_api import LiveApi

pytestmark = pytest.mark.slow


def app_for(api: LiveApi, *, key: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    # Through st.secrets, as on Streamlit Community Cloud.
    at.secrets["FASHION_SEARCH_UI_API_URL"] = api.url
    at.secrets["FASHION_SEARCH_UI_API_KEY"] = api.key if key is None else key
    return at.run()


def result_names(at: AppTest) -> list[str]:
    """Display names on the result cards, in rank order."""
    return [
        m.value.strip("*")
        for m in at.markdown
        if m.value.startswith("**") and m.value != "**Your query**"
    ]


def result_image_urls(at: AppTest, api: LiveApi) -> list[str]:
    return [u for img in at.image for u in img.value if u.startswith(api.url)]


def scores(at: AppTest) -> list[float]:
    return [float(c.value.split()[1]) for c in at.caption if c.value.startswith("score ")]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def text_search(at: AppTest, text: str) -> AppTest:
    at.text_input(key="text_query").input(text)
    return at.button(key="text_submit").click().run()


def test_empty_state_suggests_queries_and_a_suggestion_runs(live_api_server: LiveApi) -> None:
    at = app_for(live_api_server)
    assert_clean(at)
    assert "Describe what you are looking for" in at.info[0].value
    assert not result_names(at)
    suggestion = next(b for b in at.button if b.key and b.key.startswith("suggest_"))
    at = suggestion.click().run()
    assert_clean(at)
    assert at.text_input(key="text_query").value == suggestion.label
    # The default top-k (8) is more than the 7 items: every item comes back.
    assert len(result_names(at)) == len(live_api_server.items)
    assert at.subheader[0].value == f"Results for “{suggestion.label}”"
    # "Start over" returns to the empty state.
    at = at.button(key="clear_query").click().run()
    assert not result_names(at)
    assert "Describe what you are looking for" in at.info[0].value


def test_text_search_shows_a_grid_with_names_tags_scores_and_images(
    live_api_server: LiveApi,
) -> None:
    at = app_for(live_api_server)
    at.slider(key="top_k").set_value(3)
    at = text_search(at, "red cotton t-shirt")
    assert_clean(at)
    names = result_names(at)
    assert len(names) == 3
    assert set(names) <= {i.display_name for i in live_api_server.items}
    urls = result_image_urls(at, live_api_server)
    assert len(urls) == 3 and all("/files/" in u for u in urls)
    s = scores(at)
    assert len(s) == 3 and s == sorted(s, reverse=True)
    first = next(i for i in live_api_server.items if i.display_name == names[0])
    tag_line = " · ".join(first.tags[t] for t in ("articleType", "baseColour", "gender"))
    assert any(c.value.startswith(tag_line) for c in at.caption)


def test_filters_offer_catalog_values_and_restrict_results(live_api_server: LiveApi) -> None:
    at = app_for(live_api_server)
    gender = at.multiselect(key="filter_gender")
    assert sorted(gender.options) == ["Men", "Women"]
    colours = at.multiselect(key="filter_baseColour").options
    assert sorted(colours) == sorted({i.tags["baseColour"] for i in live_api_server.items})
    gender.select("Women")
    at = text_search(at, "something to wear")
    assert_clean(at)
    women = {i.display_name for i in live_api_server.items if i.tags["gender"] == "Women"}
    assert set(result_names(at)) == women  # top-k 8 > 4 women's items: all of them, only them
    # Two values of one field: either matches.
    at.multiselect(key="filter_articleType").select("Dresses").select("Handbags").run()
    assert_clean(at)
    assert set(result_names(at)) == {"Green Party Dress", "Black Leather Handbag"}


def test_upload_finds_the_look_alike_first_and_shows_the_query_image(
    live_api_server: LiveApi,
) -> None:
    item = live_api_server.item("1003")
    at = app_for(live_api_server)
    photo = ("handbag.png", item.lookalike_png(), "image/png")
    at.file_uploader(key="image_upload").set_value(photo)
    at = at.button(key="image_submit").click().run()
    assert_clean(at)
    assert result_names(at)[0] == item.display_name
    assert scores(at)[0] > 0.99
    assert "**Your query**" in [m.value for m in at.markdown]
    assert any("handbag.png" in c for img in at.image for c in img.captions)


def test_upload_of_a_catalog_image_lists_the_others(live_api_server: LiveApi) -> None:
    # The API leaves the query's own image out of "similar images"; the grid shows the rest.
    item = live_api_server.item("1002")
    at = app_for(live_api_server)
    at.file_uploader(key="image_upload").set_value(("jeans.png", item.png(), "image/png"))
    at = at.button(key="image_submit").click().run()
    assert_clean(at)
    names = result_names(at)
    assert item.display_name not in names
    assert len(names) == len(live_api_server.items) - 1


def test_url_search_goes_through_the_api_and_repeats_come_from_the_cache(
    live_api_server: LiveApi, ui_images: str
) -> None:
    item = live_api_server.item("1005")
    url = f"{ui_images}/{item.image_id}.png"
    at = app_for(live_api_server)
    at.text_input(key="image_url").input(url)
    at = at.button(key="image_submit").click().run()
    assert_clean(at)
    assert result_names(at)[0] == item.display_name
    assert live_api_server.fetched.count(url) == 1
    # The same request again (a rerun, or the same query submitted again) is served from the
    # cache: the API does not fetch the URL a second time.
    at = at.button(key="image_submit").click().run()
    assert result_names(at)[0] == item.display_name
    assert live_api_server.fetched.count(url) == 1
    # A different request (another top-k) is a new cache entry.
    at.slider(key="top_k").set_value(2).run()
    assert len(result_names(at)) == 2
    assert live_api_server.fetched.count(url) == 2


def test_more_like_this_runs_an_image_search_from_that_item(live_api_server: LiveApi) -> None:
    at = app_for(live_api_server)
    at.slider(key="top_k").set_value(3)
    at = text_search(at, "watch")
    names = result_names(at)
    target = next(i for i in live_api_server.items if i.display_name == names[-1])
    at = at.button(key=f"more_{len(names) - 1}_{target.image_id}").click().run()
    assert_clean(at)
    # What the API answers for that item's id, in the same order...
    expected = requests.post(
        f"{live_api_server.url}/get_similar_images",
        json={"image_id": target.image_id, "top_k": 3},
        headers={"X-API-Key": live_api_server.key},
        timeout=30,
    ).json()["results"]
    assert result_names(at) == [r["display_name"] for r in expected]
    assert target.display_name not in result_names(at)
    # ...beside the item's own picture, shown as the query.
    query_images = [
        (url, caption)
        for img in at.image
        for url, caption in zip(img.value, img.captions, strict=True)
        if caption == f"More like: {target.display_name}"
    ]
    assert len(query_images) == 1 and query_images[0][0].endswith(f"/files/{target.key}")


def test_mixed_query_sends_image_text_and_weights(live_api_server: LiveApi) -> None:
    item = live_api_server.item("1001")
    at = app_for(live_api_server)
    at.file_uploader(key="mix_upload").set_value(("tee.png", item.lookalike_png(), "image/png"))
    at.text_input(key="mix_text").input("in blue")
    at.text_input(key="mix_negative").input("stripes")
    at.slider(key="w_text").set_value(0.0)
    at.slider(key="w_negative").set_value(0.0)
    at = at.button(key="mix_submit").click().run()
    assert_clean(at)
    # With the words weighted 0 the query is the photo alone: its look-alike comes first.
    assert result_names(at)[0] == item.display_name
    photo_only = scores(at)[0]
    assert photo_only > 0.99
    # Weighted in, the words move the query away from the photo: the best score drops.
    at.slider(key="w_text").set_value(1.0)
    at.slider(key="w_negative").set_value(0.5)
    at = at.button(key="mix_submit").click().run()
    assert_clean(at)
    assert scores(at)[0] < photo_only - 0.01


def test_an_image_added_to_the_index_shows_up_in_a_repeated_query(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    # Its own API: this test writes to the index, the session's server must stay as seeded.
    from fashion_search.home import open_stores
    from fashion_search.model.embedder import OnnxClipEmbedder
    from fashion_search.settings import Settings

    from tests.ui.live_api import SEED, live_api, seed

    data = tmp_path / "home"
    with live_api(data, tiny_bundle) as api:
        at = app_for(api)
        at.slider(key="top_k").set_value(len(SEED) + 1)
        at = text_search(at, "red")
        assert_clean(at)
        assert len(result_names(at)) == len(SEED)

        new = replace(SEED[0], image_id="9001", display_name="Brand New Arrival")
        settings = Settings.model_validate({"embedded": {"data_dir": data}})
        embedder = OnnxClipEmbedder.from_bundle(tiny_bundle, intra_op_threads=1)
        with open_stores(settings, dimension=embedder.dim) as stores:
            seed(stores, embedder, (new,))

        # The very same query again: not the cached answer from before the image existed.
        at = at.button(key="text_submit").click().run()
        assert_clean(at)
        assert "Brand New Arrival" in result_names(at)
