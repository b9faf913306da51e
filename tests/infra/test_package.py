"""The package is whole: the Lambda artifacts built from template.yaml (infra/build_lambda.py,
local target) import and work in a fresh interpreter that sees nothing but them.

Ingest: a real JPEG put into the bucket produces an S3 -> SQS notification; the built ingest
handler takes the SQS event and the catalog item ends INDEXED with its vector in Pinecone (the
local Pinecone server). API: the built API handler answers an HTTP API v2 text query with 200
and that image. A dependency missing from a layer fails the import here.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fashion_search.stores.aws.dynamodb_catalog import DynamoDBCatalog
from fashion_search.types import ItemStatus
from PIL import Image

from infra.build_lambda import ROOT, UNZIPPED_LIMIT_BYTES, BuildError, BuildResult, build, report
from tests.fakes.pinecone_api import FakePinecone
from tests.infra import sam
from tests.infra.iam import denied
from tests.infra.lambda_stack import HandlerRun, MotoStack, run_handler

pytestmark = pytest.mark.slow

API_KEY = "test-api-key-0123456789"
INDEX = "fashion-search-package-test"


def find_python312() -> str | None:
    """An interpreter for the release artifacts (Lambda's python3.12), if this machine has one."""
    candidates: list[tuple[str, dict[str, str]]] = [("python3.12", {})]
    pyenv = shutil.which("pyenv")
    if pyenv:  # pyenv shims answer only for the selected versions
        bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
        for version in bare.stdout.split():
            if version.startswith("3.12"):
                candidates.append(("python3.12", {"PYENV_VERSION": version}))
    for exe, extra in candidates:
        if not shutil.which(exe):
            continue
        proc = subprocess.run(
            [exe, "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            env={**os.environ, **extra},
        )
        if proc.returncode == 0:
            return proc.stdout.strip()
    return None


@pytest.fixture(scope="module", params=["local", "release"])
def built(request: pytest.FixtureRequest) -> tuple[BuildResult, str]:
    """(artifacts, interpreter). local: this interpreter and the venv's pinned packages;
    release: the python3.12 manylinux build SAM deploys, run by a python3.12 if there is one."""
    target = str(request.param)
    out = ROOT / ".cache" / "lambda-build" / f"test-{target}"
    if target == "local":
        # Third-party layers are reused while their pins are unchanged; code is copied afresh.
        return build(out, target="local"), sys.executable
    python = find_python312()
    if python is None:
        pytest.skip("no python3.12 here to run the release artifacts")
    try:
        return build(out, target="release", runtime_standin=True), python
    except BuildError as exc:  # offline without a pip cache: the local target still runs
        pytest.skip(f"release build needs the package index: {str(exc)[:200]}")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_bundle: Path,
) -> Iterator[MotoStack]:
    stack = MotoStack(cache_dir=tmp_path_factory.mktemp("model-cache"))
    stack.parameters.update(ModelName="tiny", PineconeIndexName=INDEX)
    stack.start()
    try:
        stack.create_resources(api_keys=[API_KEY])
        stack.upload_dir(tiny_bundle, "models/tiny/")
        yield stack
    finally:
        stack.stop()


def pinecone_env(fake: FakePinecone, dimension: int) -> dict[str, str]:
    if INDEX not in fake.indexes:
        fake.create_index(INDEX, dimension=dimension)
    return {"FASHION_SEARCH_AWS__PINECONE_HOST": fake.host_of(INDEX)}


def stored_vectors(fake: FakePinecone) -> int:
    return sum(len(space) for space in fake.indexes[INDEX].namespaces.values())


def jpeg_bytes() -> bytes:
    image = Image.new("RGB", (96, 128), (200, 30, 40))
    for x in range(20, 70):
        for y in range(30, 100):
            image.putpixel((x, y), (250, 250, 250))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def http_api_event(path: str, body: dict[str, Any], *, api_key: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2.0) request for the `ANY /{proxy+}` route."""
    raw = json.dumps(body).encode()
    return {
        "version": "2.0",
        "routeKey": "ANY /{proxy+}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-api-key": api_key,
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "pytest",
            },
            "requestId": "req-1",
            "routeKey": "ANY /{proxy+}",
            "stage": "$default",
            "time": "29/Nov/2026:19:00:00 +0000",
            "timeEpoch": 1_795_978_800_000,
        },
        "pathParameters": {"proxy": path.lstrip("/")},
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }


def assert_policy_covers(run: HandlerRun, stack: MotoStack, logical_id: str) -> None:
    """Every AWS call the handler made is allowed by its policy in template.yaml."""
    assert run.calls, "the handler made no AWS call: nothing was checked"
    # The role CloudFormation gets after the SAM transform, not the template's own text.
    statements = sam.function_statements(sam.translated_default(), logical_id)
    assert denied(run.calls, statements, stack.names()) == []


def test_built_handlers_ingest_and_search(
    built: tuple[BuildResult, str],
    stack: MotoStack,
    tiny_bundle: Path,
    pinecone_fake: FakePinecone,
    tmp_path: Path,
) -> None:
    artifacts, python = built
    fake = pinecone_fake
    stack.put_pinecone_key(fake.api_key)
    dimension = json.loads((tiny_bundle / "config.json").read_text())["embed_dim"]
    key = f"{stack.parameters['IngestPrefix']}tops/red shirt é.jpg"
    stack.client("s3").put_object(
        Bucket=stack.bucket,
        Key=key,
        Body=jpeg_bytes(),
        ContentType="image/jpeg",
        Metadata={"articletype": "Tshirts", "basecolour": "Red"},
    )
    event = stack.receive_sqs_event()
    assert event["Records"], "S3 sent no notification to the queue"

    ingest_env = stack.function_env("IngestFunction", **pinecone_env(fake, dimension))
    ingest = run_handler(
        artifacts.paths_for("IngestFunction"),
        event,
        env=ingest_env,
        workdir=tmp_path,
        python=python,
        handler=artifacts.handler_of("IngestFunction"),
    )
    assert ingest.returncode == 0, ingest.output[-6000:]
    assert ingest.strays == []
    assert_policy_covers(ingest, stack, "IngestFunction")
    assert ingest.result == {"batchItemFailures": []}, ingest.output[-5000:]

    catalog = DynamoDBCatalog(stack.table, client=stack.client("dynamodb"))
    item = catalog.get("tops/red shirt é")
    assert item is not None and item.status is ItemStatus.INDEXED, item
    assert item.key == key
    # One vector (its id is the adapter's ASCII encoding of the image id).
    assert stored_vectors(fake) == 1

    api_env = stack.function_env("ApiFunction", **pinecone_env(fake, dimension))
    query = http_api_event("/get_image_by_text", {"text": "a red shirt"}, api_key=API_KEY)
    api = run_handler(
        artifacts.paths_for("ApiFunction"),
        query,
        env=api_env,
        workdir=tmp_path,
        python=python,
        handler=artifacts.handler_of("ApiFunction"),
    )
    assert api.returncode == 0, api.output[-6000:]
    assert api.strays == []
    assert_policy_covers(api, stack, "ApiFunction")
    response = api.result
    assert response["statusCode"] == 200, response
    body = json.loads(
        base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"]
    )
    (hit,) = body["results"]
    assert hit["image_id"] == "tops/red shirt é"
    assert stack.bucket in hit["image_url"]

    denied = run_handler(
        artifacts.paths_for("ApiFunction"),
        http_api_event("/get_image_by_text", {"text": "a red shirt"}, api_key="wrong"),
        env=api_env,
        workdir=tmp_path,
        python=python,
    )
    assert denied.result["statusCode"] == 403, denied.output[-3000:]

    # Removing the object removes the image: vector deleted, catalog tombstone.
    stack.client("s3").delete_object(Bucket=stack.bucket, Key=key)
    removal = run_handler(
        artifacts.paths_for("IngestFunction"),
        stack.receive_sqs_event(),
        env=ingest_env,
        workdir=tmp_path,
        python=python,
        handler=artifacts.handler_of("IngestFunction"),
    )
    assert removal.result == {"batchItemFailures": []}, removal.output[-5000:]
    assert_policy_covers(removal, stack, "IngestFunction")
    gone = catalog.get("tops/red shirt é")
    assert gone is not None and gone.status is ItemStatus.DELETED
    assert stored_vectors(fake) == 0


def test_a_layer_left_out_fails_the_import(
    built: tuple[BuildResult, str], stack: MotoStack, tmp_path: Path
) -> None:
    """The check has teeth: without the common layer (pydantic, Powertools, pinecone) the
    handler cannot import, because nothing outside the built directories is visible."""
    artifacts, python = built
    paths = [p for p in artifacts.paths_for("IngestFunction") if "CommonLayer" not in str(p)]
    run = run_handler(
        paths,
        {"Records": []},
        env=stack.function_env("IngestFunction"),
        workdir=tmp_path,
        python=python,
    )
    assert run.returncode != 0
    assert "ModuleNotFoundError" in run.output


def test_each_function_stays_far_below_the_unzipped_limit(
    built: tuple[BuildResult, str], capsys: pytest.CaptureFixture[str]
) -> None:
    artifacts, _ = built
    with capsys.disabled():  # the figures are the point: show them in the test log
        print()
        report(artifacts)
    for name, size in artifacts.function_bytes.items():
        # 20 % headroom, so adding a dependency is a decision and not a surprise at deploy time.
        assert size < 0.8 * UNZIPPED_LIMIT_BYTES, f"{name}: {size / 1e6:.1f} MB"
