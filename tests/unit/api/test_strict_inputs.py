"""Inputs that used to slip through or crash: deep form filters, booleans as numbers, invisible
text. Forms get the same limits and the same strictness as JSON bodies."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.unit.api.conftest import Home
from tests.unit.api.test_limits_errors import assert_error_shape

DEEP = 500


def _deep_filters() -> list[str]:
    nested = "[" * DEEP + "]" * DEEP
    return [
        nested,  # a bare list, never a filter
        '{"baseColour": ' + nested + "}",  # a list value nested past any sane depth
        '{"$and": ' + "[" * DEEP + "{}" + "]" * DEEP + "}",
    ]


@pytest.mark.parametrize("filters", _deep_filters())
@pytest.mark.parametrize("path", ["/get_similar_images", "/search"])
def test_deeply_nested_form_filters_are_422(
    client: TestClient, home: Home, path: str, filters: str
) -> None:
    r = client.post(
        path,
        data={"filters": filters},
        files={"file": ("a.png", home.images["1001"], "image/png")},
    )
    assert r.status_code == 422, r.text
    assert assert_error_shape(r.json())["field"] in ("filters", "baseColour", "$and")


@pytest.mark.parametrize("filters", _deep_filters())
def test_json_and_form_refuse_the_same_deep_filters(
    client: TestClient, home: Home, filters: str
) -> None:
    # The JSON body with the same filter: one parser, one answer.
    raw = '{"image_id": "1001", "filters": ' + filters + "}"
    r = client.post(
        "/get_similar_images", content=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert_error_shape(r.json())


def test_form_filters_still_work(client: TestClient, home: Home) -> None:
    r = client.post(
        "/get_similar_images",
        data={"filters": json.dumps({"baseColour": {"$eq": "Red"}}), "top_k": "5"},
        files={"file": ("a.png", home.images["1001"], "image/png")},
    )
    assert r.status_code == 200, r.text
    assert {h["tags"]["baseColour"] for h in r.json()["results"]} == {"Red"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/get_image_by_text", {"text": "red dress", "top_k": True}),
        ("/get_similar_images", {"image_id": "1001", "top_k": True}),
        ("/search", {"text": "red dress", "top_k": True}),
        ("/search", {"text": "red dress", "top_k": 2.0}),
        ("/search", {"text": "red dress", "top_k": "2"}),
        ("/search", {"text": "red dress", "weights": {"text": True}}),
    ],
)
def test_booleans_and_floats_are_not_counts(
    client: TestClient, path: str, body: dict[str, object]
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert assert_error_shape(r.json())["field"] in ("top_k", "weights.text")


@pytest.mark.parametrize("top_k", ["true", "1.0", " 2", "1_0", "\u0663", "+2", ""])
@pytest.mark.parametrize("path", ["/get_similar_images", "/search"])
def test_form_top_k_is_a_plain_integer(
    client: TestClient, home: Home, path: str, top_k: str
) -> None:
    r = client.post(
        path,
        data={"top_k": top_k},
        files={"file": ("a.png", home.images["1001"], "image/png")},
    )
    assert r.status_code == 422, r.text
    assert assert_error_shape(r.json())["field"] == "top_k"


def test_form_top_k_accepts_digits(client: TestClient, home: Home) -> None:
    r = client.post(
        "/search",
        data={"top_k": "2"},
        files={"file": ("a.png", home.images["1001"], "image/png")},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 2


@pytest.mark.parametrize("form_weight", ["true", "nan", "inf", "1_0", "0x10", "\u0661"])
def test_form_weights_are_plain_finite_numbers(
    client: TestClient, home: Home, form_weight: str
) -> None:
    r = client.post(
        "/search",
        data={"text": "red", "weight_text": form_weight},
        files={"file": ("a.png", home.images["1001"], "image/png")},
    )
    assert r.status_code == 422, r.text
    assert_error_shape(r.json())


INVISIBLE = ["\x00", "\ufeff", "\x00\ufeff", "\u200b\u200d", "\u2060 \u00ad", "\u3000\t\n", "\x1b"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_text_is_422(client: TestClient, text: str) -> None:
    r = client.post("/get_image_by_text", json={"text": text})
    assert r.status_code == 422, r.text
    assert assert_error_shape(r.json())["field"] == "text"
    r = client.post("/search", json={"text": "red dress", "negative_text": text})
    assert r.status_code == 422, r.text
    assert assert_error_shape(r.json())["field"] == "negative_text"


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_form_text_is_422(client: TestClient, text: str) -> None:
    # A multipart body with only a text part (no file): (None, value) is a plain field.
    r = client.post("/search", files={"text": (None, text)})
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("text", ["\ufeffred dress", "dress\x00", "ドレス", "👗"])
def test_visible_text_with_stray_marks_still_searches(client: TestClient, text: str) -> None:
    r = client.post("/get_image_by_text", json={"text": text})
    assert r.status_code == 200, r.text


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("width", "height"), [(1, 20_000), (20_000, 1)])
@pytest.mark.parametrize("path", ["/get_similar_images", "/search"])
def test_extreme_aspect_ratio_upload_is_422(
    client: TestClient, path: str, width: int, height: int
) -> None:
    # A few hundred bytes that a short-side resize would blow up to width x height x scale.
    r = client.post(path, files={"file": ("thin.png", _png(width, height), "image/png")})
    assert r.status_code == 422, r.text
    error = assert_error_shape(r.json())
    assert error["code"] == "invalid_image" and "aspect ratio" in str(error["message"])
