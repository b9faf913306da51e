"""Limits and the one error shape: 413, 415, 422, too many form fields, 404/405, 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fashion_search.api import create_app
from fastapi.testclient import TestClient

from tests.unit.api.conftest import Home

MB = 1024 * 1024


def assert_error_shape(body: dict[str, object]) -> dict[str, object]:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"code", "message", "field"}
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return error


def test_seven_mb_upload_is_413(client: TestClient) -> None:
    data = b"\xff\xd8\xff" + b"\0" * (7 * MB)
    r = client.post("/get_similar_images", files={"file": ("big.jpg", data, "image/jpeg")})
    assert r.status_code == 413
    assert assert_error_shape(r.json())["code"] == "payload_too_large"


def test_body_without_content_length_is_capped_while_streaming(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):  # 8 MB, chunked: no Content-Length to check up front
            yield b"a" * MB

    r = client.post(
        "/get_image_by_text", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert assert_error_shape(r.json())["code"] == "payload_too_large"


def test_upload_over_the_cap_but_under_body_limit_is_413(client: TestClient, home: Home) -> None:
    # 4.5 MB passes the body cap (sized for base64) but not the 4 MB upload cap.
    data = b"\x89PNG\r\n\x1a\n" + b"\0" * (4 * MB + MB // 2)
    r = client.post("/get_similar_images", files={"file": ("a.png", data, "image/png")})
    assert r.status_code == 413
    assert assert_error_shape(r.json())["field"] == "file"


def test_multipart_with_two_thousand_fields_is_rejected(client: TestClient) -> None:
    fields = [(f"f{i}", "x") for i in range(2000)]
    r = client.post("/get_similar_images", data=dict(fields), files={"file": ("a.png", b"x")})
    assert 400 <= r.status_code < 500
    assert "too many" in assert_error_shape(r.json())["message"].lower()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/get_image_by_text", "text/plain"),
        ("/get_image_by_text", "multipart/form-data; boundary=x"),
        ("/get_similar_images", "application/xml"),
        ("/search", "image/png"),
    ],
)
def test_wrong_content_type_is_415(client: TestClient, path: str, ctype: str) -> None:
    r = client.post(path, content=b"hello", headers={"Content-Type": ctype})
    assert r.status_code == 415
    assert assert_error_shape(r.json())["code"] == "unsupported_media_type"


@pytest.mark.parametrize("text", ["", "   ", "x" * 100_000])
def test_empty_or_huge_text_is_422(client: TestClient, text: str) -> None:
    r = client.post("/get_image_by_text", json={"text": text})
    assert r.status_code == 422
    assert assert_error_shape(r.json())["field"] == "text"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x", "top_k": 0}, "top_k"),
        ({"text": "x", "top_k": 101}, "top_k"),
        ({"text": "x", "top_k": "many"}, "top_k"),
        ({"text": 5}, "text"),
        ({"text": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_json_fields_are_422_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    r = client.post("/get_image_by_text", json=body)
    assert r.status_code == 422
    assert assert_error_shape(r.json())["field"] == field


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post(
        "/get_image_by_text", content=b'{"text": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert_error_shape(r.json())


def test_unknown_route_and_wrong_method_share_the_shape(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404
    assert assert_error_shape(r.json())["code"] == "not_found"
    r = client.get("/get_image_by_text")
    assert r.status_code == 405
    assert assert_error_shape(r.json())["code"] == "method_not_allowed"


def test_fastapi_validation_errors_share_the_shape(home: Home, searcher: object) -> None:
    app = create_app(home.settings, searcher=searcher)  # type: ignore[arg-type]

    @app.get("/typed")
    def typed(n: int) -> dict[str, int]:
        return {"n": n}

    with TestClient(app) as c:
        r = c.get("/typed", params={"n": "abc"})
    assert r.status_code == 422
    error = assert_error_shape(r.json())
    assert error["code"] == "invalid_input" and error["field"] == "n"


def test_unexpected_errors_are_500_without_internals(home: Home, searcher: object) -> None:
    app = create_app(home.settings, searcher=searcher)  # type: ignore[arg-type]

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    error = assert_error_shape(r.json())
    assert error["code"] == "internal_error"
    assert "secret" not in r.text
