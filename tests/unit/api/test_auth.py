"""X-API-Key: 401 missing, 403 wrong, every key compared, keys never logged, explicit opt-out."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

import pytest
from fashion_search.api import create_app
from fashion_search.api.auth import ApiKeyChecker, parse_secret
from fashion_search.errors import ConfigError, Forbidden, Unauthorized
from fashion_search.search import Searcher
from fashion_search.settings import ApiSettings
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.unit.api.conftest import API_KEY, Home, api_settings

QUERY = {"text": "red dress"}


def test_missing_key_is_401_wrong_key_403_right_key_200(home: Home, searcher: Searcher) -> None:
    with TestClient(create_app(home.settings, searcher=searcher)) as c:
        r = c.post("/get_image_by_text", json=QUERY)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "APIKey"
        r = c.post("/get_image_by_text", json=QUERY, headers={"X-API-Key": API_KEY + "x"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
        r = c.post("/get_image_by_text", json=QUERY, headers={"X-API-Key": API_KEY})
        assert r.status_code == 200


@pytest.mark.parametrize("path", ["/tags", "/images/1001"])
def test_every_data_route_needs_the_key(client: TestClient, path: str) -> None:
    assert client.get(path, headers={"X-API-Key": ""}).status_code == 401


def test_keys_are_never_logged(
    home: Home, searcher: Searcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(home.settings, searcher=searcher)) as c:
        c.post("/get_image_by_text", json=QUERY, headers={"X-API-Key": API_KEY})
        c.post("/get_image_by_text", json=QUERY, headers={"X-API-Key": "wrong-key-123"})
    assert API_KEY not in caplog.text
    assert "wrong-key-123" not in caplog.text


@pytest.mark.parametrize("presented", ["k1", "k3", "nope", "k"])
def test_every_key_is_compared_whichever_matches(
    monkeypatch: pytest.MonkeyPatch, presented: str
) -> None:
    # Constant time: no early exit on the first match or mismatch.
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr("fashion_search.api.auth.hmac.compare_digest", counting)
    checker = ApiKeyChecker(ApiSettings(api_keys=[SecretStr(k) for k in ("k1", "k2", "k3")]))
    if presented in ("k1", "k3"):
        checker.check(presented)
    else:
        with pytest.raises(Forbidden):
            checker.check(presented)
    assert calls == [b"k1", b"k2", b"k3"]


def test_keys_from_the_secret_are_read_once_and_cached() -> None:
    reads: list[str] = []

    def read_secret(name: str) -> str:
        reads.append(name)
        return '{"api_keys": ["remote-1", "remote-2"]}'

    checker = ApiKeyChecker(ApiSettings(api_key_secret_name="fs/api-keys"), read_secret=read_secret)
    checker.check("remote-2")
    checker.check("remote-1")
    with pytest.raises(Unauthorized):
        checker.check(None)
    with pytest.raises(Forbidden):
        checker.check("local")
    assert reads == ["fs/api-keys"]


@pytest.mark.parametrize(
    ("secret", "keys"),
    [
        ("plain-key\n", ["plain-key"]),
        ('["a", "b"]', ["a", "b"]),
        ('{"api_key": "a"}', ["a"]),
        ('{"api_keys": ["a", ""]}', ["a"]),
    ],
)
def test_secret_formats(secret: str, keys: list[str]) -> None:
    assert parse_secret(secret) == keys


def test_malformed_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_secret("{not json")


def test_auth_off_only_when_disabled(tmp_path: Path, home: Home, searcher: Searcher) -> None:
    settings = api_settings(tmp_path / "d", api_keys=[], auth_disabled=True)
    with TestClient(create_app(settings, searcher=searcher)) as c:
        assert c.post("/get_image_by_text", json=QUERY).status_code == 200
    # No keys and not disabled: refused (a server misconfiguration, not an open API).
    settings = api_settings(tmp_path / "d", api_keys=[])
    with TestClient(create_app(settings, searcher=searcher)) as c:
        r = c.post("/get_image_by_text", json=QUERY, headers={"X-API-Key": "anything"})
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "config_error"
