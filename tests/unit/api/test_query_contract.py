"""One query contract: the defaults live in the core (``fashion_search.query``), the request
models carry them into the OpenAPI document for JSON and multipart alike, and a picture that
cannot be decoded is refused naming the field it came in."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fashion_search import query
from fashion_search.api import create_app
from fashion_search.api.uploads import decode_base64
from fashion_search.errors import InvalidInput, PayloadTooLarge
from fashion_search.search import Searcher
from fashion_search.settings import LimitSettings, SearchSettings
from fastapi.testclient import TestClient

from tests.unit.api.conftest import Home
from tests.unit.api.test_limits_errors import assert_error_shape

JSON = "application/json"
FORM = "multipart/form-data"


def _spec(client: TestClient) -> dict[str, Any]:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    return spec


def _body_schema(spec: dict[str, Any], path: str, content_type: str) -> dict[str, Any]:
    """The schema of ``path``'s request body for ``content_type``, its $ref resolved."""
    content = spec["paths"][path]["post"]["requestBody"]["content"]
    ref = content[content_type]["schema"]["$ref"]
    schema: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def _resolve(spec: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if ref is None:
        return prop
    resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return resolved


@pytest.mark.parametrize(
    ("path", "types", "fields"),
    [
        ("/get_image_by_text", {JSON}, {JSON: {"text", "top_k", "filters", "alpha"}}),
        (
            "/get_similar_images",
            {JSON, FORM},
            {
                JSON: {"url", "image_base64", "image_id", "top_k", "filters"},
                FORM: {"file", "top_k", "filters"},
            },
        ),
        (
            "/search",
            {JSON, FORM},
            {
                JSON: {"text", "negative_text", "image_url", "image_base64", "image_id"}
                | {"weights", "top_k", "filters", "alpha"},
                FORM: {"file", "text", "negative_text", "image_url", "image_id", "top_k"}
                | {"weight_image", "weight_text", "weight_negative", "filters", "alpha"},
            },
        ),
    ],
)
def test_openapi_documents_each_content_type_with_its_fields(
    client: TestClient, path: str, types: set[str], fields: dict[str, set[str]]
) -> None:
    spec = _spec(client)
    assert set(spec["paths"][path]["post"]["requestBody"]["content"]) == types
    for content_type in types:
        assert set(_body_schema(spec, path, content_type)["properties"]) == fields[content_type]


def test_openapi_multipart_file_is_a_binary_part(client: TestClient) -> None:
    spec = _spec(client)
    similar = _body_schema(spec, "/get_similar_images", FORM)
    assert similar["required"] == ["file"]
    assert similar["properties"]["file"]["format"] == "binary"
    search = _body_schema(spec, "/search", FORM)
    assert search["properties"]["file"]["anyOf"][0]["format"] == "binary"
    # A form's filters travel as a JSON string.
    assert similar["properties"]["filters"]["type"] == "string"


def test_openapi_defaults_are_the_cores(client: TestClient, home: Home) -> None:
    spec = _spec(client)
    text = _body_schema(spec, "/get_image_by_text", JSON)["properties"]
    assert text["top_k"]["default"] == query.TOP_K_TEXT
    for content_type in (JSON, FORM):
        similar = _body_schema(spec, "/get_similar_images", content_type)["properties"]
        assert similar["top_k"]["default"] == query.TOP_K_IMAGE
    core_weights = {"image": query.W_IMAGE, "text": query.W_TEXT, "negative": query.W_NEGATIVE}
    search_json = _body_schema(spec, "/search", JSON)["properties"]
    weights = _resolve(spec, search_json["weights"])["properties"]
    assert {name: weights[name]["default"] for name in core_weights} == core_weights
    search_form = _body_schema(spec, "/search", FORM)["properties"]
    assert {name: search_form[f"weight_{name}"]["default"] for name in core_weights} == (
        core_weights
    )
    # alpha's default is a setting; every body that takes alpha documents the configured one.
    for props in (text, search_json, search_form):
        assert props["alpha"]["default"] == home.settings.search.alpha


def _bounds(prop: dict[str, Any]) -> tuple[Any, Any]:
    """(minimum, maximum) of a property, looking inside ``anyOf`` (an optional field)."""
    for option in [prop, *prop.get("anyOf", [])]:
        if "minimum" in option or "maximum" in option:
            return option.get("minimum"), option.get("maximum")
    return None, None


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def test_openapi_multipart_bounds_are_the_json_bounds(client: TestClient) -> None:
    """A client generated from the document validates a form as the server does: the bounds are
    JSON Schema's minimum/maximum (pydantic's own ge/le names are not JSON Schema)."""
    spec = _spec(client)
    assert not {"ge", "le", "gt", "lt"} & set(_keys(spec["components"]["schemas"]))
    form = _body_schema(spec, "/search", FORM)["properties"]
    body = _body_schema(spec, "/search", JSON)["properties"]
    weights = _resolve(spec, body["weights"])["properties"]
    for name in ("image", "text", "negative"):
        assert _bounds(form[f"weight_{name}"]) == _bounds(weights[name]) == (0, 100)
    assert _bounds(form["alpha"]) == _bounds(body["alpha"]) == (0, 1)
    assert _bounds(form["top_k"])[0] == _bounds(body["top_k"])[0] == 1


def test_openapi_follows_the_deployments_settings(home: Home, searcher: Searcher) -> None:
    settings = home.settings.model_copy(
        update={
            "limits": LimitSettings(max_top_k=7, max_text_chars=40),
            "search": SearchSettings(alpha=0.8),
        }
    )
    with TestClient(create_app(settings, searcher=searcher)) as client:
        spec = _spec(client)
    for path, content_type in [
        ("/get_image_by_text", JSON),
        ("/get_similar_images", JSON),
        ("/get_similar_images", FORM),
        ("/search", JSON),
        ("/search", FORM),
    ]:
        props = _body_schema(spec, path, content_type)["properties"]
        top_k = props["top_k"].get("anyOf", [props["top_k"]])[0]
        assert top_k["maximum"] == 7, (path, content_type)
        if "text" in props:
            assert props["text"].get("anyOf", [props["text"]])[0]["maxLength"] == 40
        if "alpha" in props:
            assert props["alpha"]["default"] == 0.8


def test_omitted_fields_take_the_core_defaults_in_json_and_form(
    client: TestClient, home: Home
) -> None:
    image = home.images["1001"]
    as_form = client.post("/get_similar_images", files={"file": ("a.png", image, "image/png")})
    encoded = base64.b64encode(image).decode()
    as_json = client.post("/get_similar_images", json={"image_base64": encoded})
    text = client.post("/get_image_by_text", json={"text": "red dress"})
    search_form = client.post("/search", files={"text": (None, "red dress")})
    for r in (as_form, as_json, text, search_form):
        assert r.status_code == 200, r.text
    assert len(as_form.json()["results"]) == len(as_json.json()["results"]) == query.TOP_K_IMAGE
    assert len(text.json()["results"]) == len(search_form.json()["results"]) == query.TOP_K_TEXT
    assert text.json()["alpha"] == search_form.json()["alpha"] == home.settings.search.alpha


NOT_AN_IMAGE = b"<html>hello</html>"


@pytest.mark.parametrize("path", ["/get_similar_images", "/search"])
def test_an_undecodable_upload_names_its_form_field(client: TestClient, path: str) -> None:
    r = client.post(path, files={"file": ("a.png", NOT_AN_IMAGE, "image/png")})
    assert r.status_code == 422, r.text
    error = assert_error_shape(r.json())
    assert error["code"] == "invalid_image" and error["field"] == "file"


@pytest.mark.parametrize("path", ["/get_similar_images", "/search"])
def test_undecodable_base64_image_names_its_json_field(client: TestClient, path: str) -> None:
    encoded = base64.b64encode(NOT_AN_IMAGE).decode()
    r = client.post(path, json={"image_base64": encoded})
    assert r.status_code == 422, r.text
    error = assert_error_shape(r.json())
    assert error["code"] == "invalid_image" and error["field"] == "image_base64"


def test_a_form_weight_has_the_json_bound(client: TestClient, home: Home) -> None:
    # One contract for both bodies: 0 .. 100, as the JSON weights always were.
    image = ("a.png", home.images["1001"], "image/png")
    over = client.post("/search", data={"text": "red", "weight_text": "150"}, files={"file": image})
    assert over.status_code == 422
    assert assert_error_shape(over.json())["field"] == "weight_text"
    ok = client.post("/search", data={"text": "red", "weight_text": "100"}, files={"file": image})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "encode",
    [
        lambda d: base64.b64encode(d).decode(),
        lambda d: base64.urlsafe_b64encode(d).decode(),
        lambda d: base64.urlsafe_b64encode(d).decode().rstrip("="),
        lambda d: "data:image/jpeg;base64," + base64.b64encode(d).decode(),
        lambda d: "\n".join(base64.encodebytes(d).decode().splitlines()),  # MIME line breaks
    ],
)
def test_base64_variants_decode(encode: Any) -> None:
    data = bytes(range(256)) * 3 + b"\xfb\xff"  # exercises + / and - _
    assert decode_base64(encode(data), field="image_base64", max_bytes=10_000) == data


@pytest.mark.parametrize("bad", ["", "abc$", "a", "ab==cd", "data:image/png;base64,"])
def test_malformed_base64_names_the_field(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_base64(bad, field="image_base64", max_bytes=100)
    assert info.value.field == "image_base64"


def test_base64_over_the_cap_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        decode_base64(base64.b64encode(b"x" * 2000).decode(), field="image_base64", max_bytes=1000)
