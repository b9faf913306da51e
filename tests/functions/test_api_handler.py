"""The API Lambda entry invoked with API Gateway events (``events/api_*.json``) under moto.

The API keys live in (moto's) Secrets Manager and are read through Powertools Parameters. Both
homes: embedded (folder + SQLite + embedded index) and AWS (S3 + DynamoDB under moto, Pinecone
through the local Pinecone-protocol server).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import fashion_search.model.loader as loader
import pytest
from aws_lambda_powertools.utilities import parameters
from fashion_search.home import open_stores
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.settings import Settings
from threadpoolctl import threadpool_info, threadpool_limits

from tests.unit.api.conftest import ITEMS, fill

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
KEY = "fs-test-key-0123456789"  # the x-api-key in the event files
PUBLIC = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod"


def event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


class Context:
    function_name = "fashion-search-api"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fashion-search-api"
    aws_request_id = "7f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def body_of(response: dict[str, Any]) -> Any:
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw) if raw.lstrip().startswith(("{", "[")) else raw


@pytest.fixture(params=["embedded", "aws"])
def lambda_env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_bundle: Path,
    tiny_embedder: OnnxClipEmbedder,
    secret_name: Callable[[str, str], str],
) -> Iterator[str]:
    secret_name("fashion-search/api-keys", json.dumps({"api_keys": ["older-key", KEY]}))
    env = {
        "FASHION_SEARCH_MODEL__BUNDLE": str(tiny_bundle),
        "FASHION_SEARCH_MODEL__INTRA_OP_THREADS": "1",
        "FASHION_SEARCH_API__API_KEY_SECRET_NAME": "fashion-search/api-keys",
        "FASHION_SEARCH_API__PUBLIC_URL": PUBLIC,
        "FASHION_SEARCH_API__API_GATEWAY_BASE_PATH": "/prod",
        "FASHION_SEARCH_EMBEDDED__DATA_DIR": str(tmp_path / "data"),
        # As template.yaml sets them (Globals + ApiFunction).
        "POWERTOOLS_SERVICE_NAME": "fashion-search-api",
        "POWERTOOLS_METRICS_NAMESPACE": "FashionSearch",
    }
    if request.param == "aws":
        request.getfixturevalue("s3_bucket")
        table = request.getfixturevalue("dynamodb_catalog_table")
        env |= {
            "FASHION_SEARCH_HOME": "aws",
            "FASHION_SEARCH_AWS__REGION": "us-east-1",
            "FASHION_SEARCH_AWS__BUCKET": request.getfixturevalue("s3_bucket"),
            "FASHION_SEARCH_AWS__TABLE": table,
            "FASHION_SEARCH_AWS__PINECONE_INDEX": "default",
            "FASHION_SEARCH_AWS__PINECONE_API_KEY": request.getfixturevalue(
                "pinecone_fake"
            ).api_key,
            "FASHION_SEARCH_AWS__PINECONE_HOST": request.getfixturevalue("pinecone_server"),
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with open_stores(Settings(_env_file=None), dimension=tiny_embedder.dim) as stores:  # type: ignore[call-arg]
        fill(stores, tiny_embedder)
    parameters.clear_caches()  # Powertools caches secrets per process; each test has its own
    yield request.param
    parameters.clear_caches()


@pytest.fixture
def load_handler(lambda_env: str) -> Iterator[Callable[[], ModuleType]]:
    """Fresh imports of functions/api/app.py, as a new Lambda container does; closed after."""
    loaded: list[ModuleType] = []

    def load() -> ModuleType:
        spec = importlib.util.spec_from_file_location(
            f"api_lambda_{uuid.uuid4().hex}", REPO / "functions" / "api" / "app.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        loaded.append(module)
        return module

    blas = {i["user_api"]: i["num_threads"] for i in threadpool_info()}.get("blas")
    yield load
    for module in loaded:  # a container never closes its clients; a test run must
        module.app.state.searcher_provider.get().stores.close()
    if blas is not None:  # the entry limits BLAS threads process-wide: undo for other tests
        threadpool_limits(limits=blas, user_api="blas")


Loader = Callable[[], ModuleType]


def test_http_api_v2_text_query(lambda_env: str, load_handler: Loader) -> None:
    response = load_handler().handler(event("api_v2_text.json"), Context())
    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert len(body["results"]) == 2
    hit = body["results"][0]
    assert hit["image_id"] in {i[0] for i in ITEMS}
    if lambda_env == "aws":
        assert hit["image_url"].startswith("https://") and "X-Amz-Signature=" in hit["image_url"]
    else:
        assert hit["image_url"] == f"{PUBLIC}/files/{hit['key']}"


def test_http_api_v2_base64_multipart_upload(lambda_env: str, load_handler: Loader) -> None:
    response = load_handler().handler(event("api_v2_upload.json"), Context())
    assert response["statusCode"] == 200, response["body"]
    assert len(body_of(response)["results"]) == 2  # top_k=2 from the form


def test_named_stage_path_and_no_auth_health(lambda_env: str, load_handler: Loader) -> None:
    response = load_handler().handler(event("api_v2_stage_health.json"), Context())
    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["index_size"] == len(ITEMS)
    assert body_of(response)["home"] == lambda_env
    assert body_of(response)["vector_engine"] == ("pinecone" if lambda_env == "aws" else "exact")


def test_missing_key_is_401_in_the_error_shape(lambda_env: str, load_handler: Loader) -> None:
    response = load_handler().handler(event("api_v2_no_key.json"), Context())
    assert response["statusCode"] == 401
    assert body_of(response)["error"]["code"] == "unauthorized"


def test_rest_api_with_stage_and_filters(lambda_env: str, load_handler: Loader) -> None:
    handler = load_handler().handler
    response = handler(event("api_rest_text.json"), Context())
    assert response["statusCode"] == 200, response["body"]
    ids = {h["image_id"] for h in body_of(response)["results"]}
    assert ids <= {i[0] for i in ITEMS if i[2]["gender"] == "Men"} and ids
    docs = handler(event("api_rest_docs.json"), Context())
    assert docs["statusCode"] == 200
    assert "/prod/openapi.json" in docs["body"]  # the docs page works behind the stage
    # Its scripts and styles come from the API itself, inside the stage (no CDN).
    assets = re.findall(r'(?:src|href)="(/prod/[^"]+)"', docs["body"])
    assert len(assets) == 3, docs["body"]  # swagger-ui.css, favicon, swagger-ui-bundle.js
    for asset in assets:
        got = handler(
            dict(event("api_rest_docs.json"), path=asset.removeprefix("/prod")), Context()
        )
        assert got["statusCode"] == 200, asset


def test_model_and_clients_load_once_per_container(
    lambda_env: str, load_handler: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    real = loader.load_embedder

    def counting(settings: Settings) -> OnnxClipEmbedder:
        loads.append("load")
        return real(settings)

    monkeypatch.setattr(loader, "load_embedder", counting)
    module = load_handler()
    assert loads == ["load"]  # at import (init phase), before any request
    # and one BLAS thread, so OpenBLAS's spinning workers do not slow onnxruntime (docs/api.md)
    assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    for name in ("api_v2_text.json", "api_v2_upload.json", "api_rest_text.json"):
        assert module.handler(event(name), Context())["statusCode"] == 200
    assert loads == ["load"]


def _stdout_json(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def test_each_request_is_logged_and_counted_in_emf_metrics(
    lambda_env: str,
    load_handler: Loader,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = load_handler()
    capsys.readouterr()
    caplog.clear()
    assert module.handler(event("api_v2_text.json"), Context())["statusCode"] == 200
    assert module.handler(event("api_v2_no_key.json"), Context())["statusCode"] == 401
    # Powertools' Logger: one record per request with the Lambda context keys.
    logs = [r for r in caplog.records if r.getMessage() == "request"]
    assert [r.status for r in logs] == [200, 401]  # type: ignore[attr-defined]
    assert {r.name for r in logs} == {"fashion-search-api"}
    # Powertools' Metrics: one EMF document on stdout per invocation.
    docs = [r for r in _stdout_json(capsys.readouterr().out) if "_aws" in r]
    emf = [r for r in docs if "Requests" in r]
    assert len(emf) == 2
    assert all(
        d["Namespace"] == "FashionSearch" for r in emf for d in r["_aws"]["CloudWatchMetrics"]
    )
    assert [r.get("Responses2xx") for r in emf] == [[1.0], None]
    assert [r.get("Responses4xx") for r in emf] == [None, [1.0]]
    assert all(r["Requests"] == [1.0] and r["service"] == "fashion-search-api" for r in emf)


def test_after_a_snapstart_restore_clients_are_new_and_search_still_works(
    lambda_env: str, load_handler: Loader
) -> None:
    import random

    import snapshot_restore_py

    module = load_handler()
    before = module.app.state.searcher_provider.get()
    state = random.getstate()
    # What the runtime does in a restored environment: run the registered hooks in order.
    registry = snapshot_restore_py._after_restore_registry
    assert any(hook is module._after_restore for hook, *_ in registry)
    random.setstate(state)
    module._after_restore()
    after = module.app.state.searcher_provider.get()
    try:
        assert random.getstate() != state  # re-seeded: restored copies do not share draws
        assert after.embedder is before.embedder  # the loaded model is what the snapshot keeps
        assert after.stores is not before.stores  # clients (credentials, connections) are new
        response = module.handler(event("api_v2_text.json"), Context())
        assert response["statusCode"] == 200, response["body"]
        assert len(body_of(response)["results"]) == 2
    finally:
        before.stores.close()


def test_each_request_is_one_model_run_with_no_wait(lambda_env: str, load_handler: Loader) -> None:
    """A container serves one request at a time: the model queue runs each request's tower
    call at once, as its own batch (no waiting for company that cannot come)."""
    module = load_handler()
    queue = module.app.state.searcher_provider.get().embedder.queue
    runs, calls = queue.stats.runs, queue.stats.calls
    for name in ("api_v2_text.json", "api_v2_upload.json", "api_rest_text.json"):
        assert module.handler(event(name), Context())["statusCode"] == 200
    assert (queue.stats.runs - runs, queue.stats.calls - calls) == (3, 3)
    assert queue.stats.waits == 0 and queue.stats.largest_batch == 1
