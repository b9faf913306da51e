"""The words' side of the API: the ``alpha`` knob on the text route and ``/search`` (JSON and
multipart), the hybrid score parts, the weak-match flag and the catalog's example queries."""

from __future__ import annotations

import pytest
from fashion_search.lexical import lexical_score, query_weights, tokenize
from fastapi.testclient import TestClient

from tests.unit.api.conftest import ITEMS, Home


def test_words_of_a_name_find_it_by_default(client: TestClient) -> None:
    """The catalog's "Green Kurta" is the only product whose name says kurta."""
    r = client.post("/get_image_by_text", json={"text": "kurta", "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["results"][0]
    assert top["image_id"] == "1005" and top["lexical_score"] > 0.5
    assert body["alpha"] == 0.5 and body["weak_match"] is False
    assert top["score"] == pytest.approx(0.5 * top["dense_score"] + 0.5 * top["lexical_score"])


def test_alpha_moves_the_ranking_from_pictures_to_words(client: TestClient, home: Home) -> None:
    text = "navy shirt"
    words = client.post("/get_image_by_text", json={"text": text, "top_k": 6, "alpha": 0})
    lexical = [h["lexical_score"] for h in words.json()["results"]]
    assert lexical == sorted(lexical, reverse=True) and words.json()["results"][0]["image_id"] == (
        "1004"
    )
    weights = query_weights(tokenize(text), home.stores.catalog.lexical_stats(tokenize(text)))  # type: ignore[attr-defined]
    named = {i[0]: f"{i[1]} {' '.join(v for v in i[2].values())}" for i in ITEMS}
    for h in words.json()["results"]:
        assert h["lexical_score"] == pytest.approx(
            lexical_score(weights, tokenize(named[h["image_id"]]))
        )
    picture = client.post("/get_image_by_text", json={"text": text, "top_k": 6, "alpha": 1})
    dense = [h["score"] for h in picture.json()["results"]]
    assert dense == sorted(dense, reverse=True)
    assert all(h["lexical_score"] is None for h in picture.json()["results"])


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "high"])
def test_alpha_out_of_range_is_422(client: TestClient, alpha: object) -> None:
    r = client.post("/search", json={"text": "dress", "alpha": alpha})
    assert r.status_code == 422
    assert r.json()["error"]["field"] in ("alpha", "body.alpha")


def test_multipart_alpha(client: TestClient) -> None:
    r = client.post("/search", files={"text": (None, "kurta"), "alpha": (None, "0")})
    assert r.status_code == 200, r.text
    assert r.json()["alpha"] == 0 and r.json()["results"][0]["image_id"] == "1005"
    bad = client.post("/search", files={"text": (None, "kurta"), "alpha": (None, "nan")})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "alpha"


def test_a_query_no_word_and_no_picture_matches_is_weak(client: TestClient, home: Home) -> None:
    home.settings.search.weak_score = 0.99  # the tiny model: no genuine dense match exists
    r = client.post("/get_image_by_text", json={"text": "zzyzx qwrt", "top_k": 2})
    assert r.status_code == 200
    assert r.json()["weak_match"] is True and r.json()["weak_below"] == 0.99
    named = client.post("/get_image_by_text", json={"text": "green kurta"})
    assert named.json()["weak_match"] is False  # its words match: an answer


def test_tags_carry_example_queries_from_the_catalog(client: TestClient) -> None:
    body = client.get("/tags").json()
    pairs = {f"{i[2]['baseColour']} {i[2]['articleType']}".lower() for i in ITEMS}
    assert body["examples"] and set(body["examples"]) <= pairs
    for query in body["examples"]:
        hits = client.post("/get_image_by_text", json={"text": query}).json()["results"]
        assert (
            hits
            and f"{hits[0]['tags']['baseColour']} {hits[0]['tags']['articleType']}".lower() == query
        )
