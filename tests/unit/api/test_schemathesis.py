"""Property-based tests from the app's own OpenAPI document: no 5xx, responses match the schema.

In-process (ASGI transport), a bounded number of examples per operation so the suite stays fast.
URL fetches go to a resolver that answers nothing, so no generated URL leaves the machine.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fashion_search.api import create_app
from fashion_search.errors import FetchError
from fashion_search.fetch import ImageFetcher
from fashion_search.search import Searcher
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from tests.unit.api.conftest import API_KEY, Home


def _no_dns(host: str, port: int) -> list[str]:
    raise FetchError(f"cannot resolve host {host!r} (tests have no DNS)", field="url")


@pytest.fixture
def api_schema(home: Home) -> Any:
    fetcher = ImageFetcher(home.settings.fetch, resolver=_no_dns)
    searcher = Searcher(home.stores, home.embedder, settings=home.settings, fetch=fetcher.fetch)
    app = create_app(home.settings, searcher=searcher)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

# Listed rather than discovered: schemathesis' pytest plugin (from_fixture) does not run on
# pytest 9; test_every_operation_is_covered keeps this list honest.
OPERATIONS = [
    ("POST", "/get_image_by_text"),
    ("POST", "/get_similar_images"),
    ("POST", "/search"),
    ("GET", "/images/{image_id}"),
    ("GET", "/tags"),
    ("GET", "/health"),
    ("GET", "/files/{key}"),
]


def test_every_operation_is_covered(api_schema: Any) -> None:
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


# Operations without a body or a constrained parameter have no "invalid" request to generate.
NO_NEGATIVE = {"/health", "/files/{key}"}
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or path not in NO_NEGATIVE
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_api_conforms_to_its_openapi(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    """Valid requests (positive) and requests that break the schema (negative): never a 5xx,
    and every answer, errors included, is a documented status with a documented body."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers={"X-API-Key": API_KEY}, checks=CHECKS)

    run()
