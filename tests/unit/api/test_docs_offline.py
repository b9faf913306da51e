"""``/docs`` and ``/redoc`` work offline: every asset is served by the API itself, nothing comes
from a CDN, a font service, a favicon host or Swagger's online validator."""

from __future__ import annotations

import re

import pytest
from fashion_search.api import create_app
from fashion_search.search import Searcher
from fastapi.testclient import TestClient

from tests.unit.api.conftest import Home, api_settings

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""")


def _assets(html: str) -> list[str]:
    return [a or b for a, b in ASSET.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_external_host(client: TestClient, page: str) -> None:
    r = client.get(page, headers={"X-API-Key": ""})  # no key needed for the docs
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), html
    assets = _assets(html)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        got = client.get(asset, headers={"X-API-Key": ""})
        assert got.status_code == 200, asset
        assert len(got.content) > 0


def test_swagger_ui_does_not_call_the_online_validator(client: TestClient) -> None:
    html = client.get("/docs").text
    assert '"validatorUrl": null' in html


def test_served_scripts_are_the_real_bundles(client: TestClient) -> None:
    html = client.get("/docs").text + client.get("/redoc").text
    scripts = [a for a in _assets(html) if a.endswith(".js")]
    assert len(scripts) == 2
    for script in scripts:
        body = client.get(script).text
        assert len(body) > 500_000  # Swagger UI / Redoc themselves, not a stub
    openapi = [a for a in _assets(html) if a.endswith("openapi.json")]
    assert all(client.get(a).json()["openapi"].startswith("3.") for a in openapi)


def test_docs_under_an_api_gateway_stage_point_inside_it(home: Home, searcher: Searcher) -> None:
    settings = api_settings(home.settings.embedded.data_dir, api_gateway_base_path="/prod")
    with TestClient(create_app(settings, searcher=searcher)) as c:
        for page in ("/docs", "/redoc"):
            assets = _assets(c.get(page).text)
            assert assets and all(a.startswith("/prod/") for a in assets), assets
            for asset in assets:  # Mangum strips the stage; the app serves the rest
                assert c.get(asset.removeprefix("/prod")).status_code == 200, asset
