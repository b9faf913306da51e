"""The routes of the HTTP API against a real embedded home and the tiny model."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from fashion_search.types import VectorRecord
from fastapi.testclient import TestClient

from tests.unit.api.conftest import ITEMS, PUBLIC_URL, Home, make_image


def expected_order(home: Home, query: np.ndarray, exclude: set[str] = frozenset()) -> list[str]:
    """Item ids by cosine similarity to ``query``, computed directly from the stored vectors."""
    vectors = home.embedder.embed_images(list(home.images.values())).vectors
    scores = vectors @ (query / np.linalg.norm(query))
    ids = list(home.images)
    ranked = sorted(range(len(ids)), key=lambda i: -scores[i])
    return [ids[i] for i in ranked if ids[i] not in exclude]


def test_text_query_returns_the_closest_image_with_everything_a_client_needs(
    client: TestClient, home: Home
) -> None:
    # alpha 1: the picture alone, so the dense order below is the whole story (the words'
    # part is tested in test_hybrid_routes.py).
    r = client.post("/get_image_by_text", json={"text": "a red summer dress", "alpha": 1.0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"results", "model_id", "took_ms", "weak_match", "weak_below", "alpha"}
    assert body["model_id"] == home.embedder.model_id
    assert len(body["results"]) == 1  # top_k defaults to 1: "the closest image"
    hit = body["results"][0]
    text_vec = home.embedder.embed_texts(["a red summer dress"])[0]
    assert hit["image_id"] == expected_order(home, text_vec)[0]
    item = next(i for i in ITEMS if i[0] == hit["image_id"])
    assert hit["display_name"] == item[1]
    assert hit["tags"] == item[2]
    assert hit["key"] == f"{hit['image_id']}.png"
    assert hit["image_url"] == f"{PUBLIC_URL}/files/{hit['key']}"
    # The URL a browser opens serves the image bytes, without an API key.
    files = client.get(hit["image_url"].removeprefix(PUBLIC_URL), headers={"X-API-Key": ""})
    assert files.status_code == 200
    assert files.headers["content-type"] == "image/png"
    assert files.content == home.images[hit["image_id"]]


def test_text_query_top_k_and_ranking(client: TestClient, home: Home) -> None:
    r = client.post("/get_image_by_text", json={"text": "striped top", "top_k": 4, "alpha": 1})
    hits = r.json()["results"]
    text_vec = home.embedder.embed_texts(["striped top"])[0]
    assert [h["image_id"] for h in hits] == expected_order(home, text_vec)[:4]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_filters_restrict_results(client: TestClient) -> None:
    r = client.post(
        "/get_image_by_text",
        json={"text": "clothes", "top_k": 10, "filters": {"gender": {"$eq": "Women"}}},
    )
    assert r.status_code == 200, r.text
    ids = {h["image_id"] for h in r.json()["results"]}
    assert ids == {i[0] for i in ITEMS if i[2]["gender"] == "Women"}


@pytest.mark.parametrize(
    ("filters", "named"),
    [({"colour": {"$eq": "Red"}}, "colour"), ({"gender": {"$regex": "W.*"}}, "$regex")],
)
def test_unknown_filter_field_or_operator_is_422_naming_it(
    client: TestClient, filters: dict[str, object], named: str
) -> None:
    r = client.post("/get_image_by_text", json={"text": "dress", "filters": filters})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_filter"
    assert named in r.json()["error"]["message"]


def test_similar_by_upload_excludes_the_query_image_itself(client: TestClient, home: Home) -> None:
    data = home.images["1001"]
    r = client.post("/get_similar_images", files={"file": ("q.png", data, "image/png")})
    assert r.status_code == 200, r.text
    ids = [h["image_id"] for h in r.json()["results"]]
    assert len(ids) == 3  # the three most similar images
    query = home.embedder.embed_images([data]).vectors[0]
    assert ids == expected_order(home, query, exclude={"1001"})[:3]


def test_similar_by_upload_top_k_form_field(client: TestClient, home: Home) -> None:
    data = make_image((120, 120, 120), stripes=False)  # not in the catalog: nothing excluded
    r = client.post(
        "/get_similar_images",
        files={"file": ("q.png", data, "image/png")},
        data={"top_k": "5"},
    )
    assert r.status_code == 200, r.text
    query = home.embedder.embed_images([data]).vectors[0]
    assert [h["image_id"] for h in r.json()["results"]] == expected_order(home, query)[:5]


@pytest.mark.parametrize("variant", ["std", "urlsafe-unpadded", "data-url"])
def test_similar_by_base64(client: TestClient, home: Home, variant: str) -> None:
    data = home.images["1003"]
    if variant == "std":
        encoded = base64.b64encode(data).decode()
    elif variant == "urlsafe-unpadded":
        encoded = base64.urlsafe_b64encode(data).decode().rstrip("=")
    else:
        encoded = "data:image/png;base64," + base64.b64encode(data).decode()
    r = client.post("/get_similar_images", json={"image_base64": encoded, "top_k": 2})
    assert r.status_code == 200, r.text
    query = home.embedder.embed_images([data]).vectors[0]
    ids = [h["image_id"] for h in r.json()["results"]]
    assert ids == expected_order(home, query, exclude={"1003"})[:2]


@pytest.mark.parametrize("bad", ["not base64!!", "QUJD$", "====", "data:image/png;base64,"])
def test_malformed_base64_is_422_naming_the_field(client: TestClient, bad: str) -> None:
    r = client.post("/get_similar_images", json={"image_base64": bad})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "image_base64"


def test_base64_that_is_not_an_image_is_422(client: TestClient) -> None:
    encoded = base64.b64encode(b"<html>hello</html>").decode()
    r = client.post("/get_similar_images", json={"image_base64": encoded})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_image"


def test_similar_by_image_id_uses_the_stored_embedding(client: TestClient, home: Home) -> None:
    # The vector index entry goes away; the catalog still holds the item's embedding.
    home.stores.vectors.delete(["1004"])
    r = client.post("/get_similar_images", json={"image_id": "1004", "top_k": 3})
    assert r.status_code == 200, r.text
    query = home.embedder.embed_images([home.images["1004"]]).vectors[0]
    assert [h["image_id"] for h in r.json()["results"]] == expected_order(
        home, query, exclude={"1004"}
    )[:3]


def test_similar_needs_exactly_one_source(client: TestClient) -> None:
    r = client.post("/get_similar_images", json={})
    assert r.status_code == 422
    r = client.post("/get_similar_images", json={"image_id": "1001", "url": "http://x.example/a"})
    assert r.status_code == 422


def test_unknown_image_id_is_404(client: TestClient) -> None:
    r = client.post("/get_similar_images", json={"image_id": "nope"})
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "no image with id 'nope'",
        "field": "image_id",
    }


def test_multimodal_search_combines_weights(client: TestClient, home: Home) -> None:
    data = home.images["1001"]
    body = {
        "image_base64": base64.b64encode(data).decode(),
        "text": "in blue",
        "negative_text": "striped",
        "weights": {"image": 1.0, "text": 2.0, "negative": 0.5},
        "top_k": 5,
        "alpha": 1.0,  # dense weights only; words are test_hybrid_routes.py's
    }
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    img = home.embedder.embed_images([data]).vectors[0]
    txt, neg = home.embedder.embed_texts(["in blue", "striped"])
    q = 1.0 * img + 2.0 * txt - 0.5 * neg
    assert [h["image_id"] for h in r.json()["results"]] == expected_order(
        home, q / np.linalg.norm(q), exclude={"1001"}
    )[:5]
    # Weights matter: with the image and the negative at 0 it is the text query's ranking
    # (a zero-weight image is not used at all, so it is not excluded either).
    body["weights"] = {"image": 0.0, "text": 1.0, "negative": 0.0}
    r2 = client.post("/search", json=body)
    assert [h["image_id"] for h in r2.json()["results"]] == expected_order(home, txt)[:5]


def test_search_multipart_with_file_and_text(client: TestClient, home: Home) -> None:
    data = home.images["1005"]
    r = client.post(
        "/search",
        files={"file": ("q.png", data, "image/png")},
        data={"text": "red", "weight_text": "0.5", "top_k": "2", "filters": '{"gender": "Women"}'},
    )
    assert r.status_code == 200, r.text
    ids = [h["image_id"] for h in r.json()["results"]]
    assert len(ids) == 2 and "1005" not in ids
    assert all(i in {"1001", "1002"} for i in ids)  # Women items other than the query


def test_search_weights_that_cancel_are_422(client: TestClient) -> None:
    r = client.post(
        "/search",
        json={"text": "dress", "negative_text": "dress", "weights": {"text": 1, "negative": 1}},
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "weights"


def test_get_image_item(client: TestClient, home: Home) -> None:
    r = client.get("/images/1002")
    assert r.status_code == 200
    item = r.json()
    assert item["display_name"] == "Red Striped Top"
    assert item["status"] == "INDEXED"
    assert item["image_url"] == f"{PUBLIC_URL}/files/1002.png"
    assert client.get("/images/9999").status_code == 404


def test_tags_lists_fields_and_values(client: TestClient) -> None:
    fields = client.get("/tags").json()["fields"]
    assert sorted(fields["gender"]) == ["Men", "Unisex", "Women"]
    assert "Dresses" in fields["articleType"]


def test_health_without_auth(client: TestClient, home: Home) -> None:
    r = client.get("/health", headers={"X-API-Key": ""})
    assert r.status_code == 200
    version = r.json()["index_version"]
    assert isinstance(version, str) and version
    assert r.json() == {
        "index_version": version,
        "status": "ok",
        "model_id": home.embedder.model_id,
        "dim": home.embedder.dim,
        "index_size": len(ITEMS),
        "home": "embedded",
        "vector_engine": "exact",  # a small catalog: under the ANN threshold
    }


def test_health_index_version_moves_when_an_image_is_added(client: TestClient, home: Home) -> None:
    before = client.get("/health").json()
    vec = home.stores.vectors.fetch(["1001"])["1001"]
    home.stores.vectors.upsert([VectorRecord(id="2001", values=vec.values, metadata=vec.metadata)])
    after = client.get("/health").json()
    assert after["index_size"] == before["index_size"] + 1
    assert after["index_version"] != before["index_version"]


def test_docs_and_openapi_without_auth(client: TestClient) -> None:
    assert client.get("/docs", headers={"X-API-Key": ""}).status_code == 200
    spec = client.get("/openapi.json", headers={"X-API-Key": ""}).json()
    assert {"/get_image_by_text", "/get_similar_images", "/search", "/health"} <= set(spec["paths"])
    similar = spec["paths"]["/get_similar_images"]["post"]["requestBody"]["content"]
    assert set(similar) == {"application/json", "multipart/form-data"}
    assert spec["components"]["schemas"]["TextQuery"]["properties"]["top_k"]["maximum"] == 100
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


@pytest.mark.parametrize("key", ["../catalog.sqlite", "a/../../x", "/etc/passwd", "nope.png"])
def test_files_route_refuses_traversal_and_missing(client: TestClient, key: str) -> None:
    r = client.get(f"/files/{key}")
    assert r.status_code in (404, 422)
    assert "error" in r.json()
