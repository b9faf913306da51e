"""infra/local_stack.py: what `sam local invoke`/`start-api` run against, minus the container.

Docker is not available here, so the container is the one part not exercised: the env-vars
file is checked against the template (SAM overrides only declared variables), and each event in
events/ is handed to its handler in a fresh interpreter whose environment is exactly that
file's, talking to the moto server and Pinecone test server the script started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.build_lambda import ROOT, load_template
from infra.local_stack import EVENT_API_KEY, FUNCTIONS, LocalStack, start

EVENTS = ROOT / "events"
_RUNNER = textwrap.dedent(
    """
    import json, sys
    sys.path[:0] = [sys.argv[1]]
    import app

    class Context:
        function_name = "local"
        function_version = "$LATEST"
        memory_limit_in_mb = 3008
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:local"
        aws_request_id = "00000000-0000-0000-0000-000000000002"
        def get_remaining_time_in_millis(self):
            return 60_000

    out = {}
    for name in sys.argv[2:]:
        event = json.load(open(name, encoding="utf-8"))
        try:
            out[name.rsplit("/", 1)[-1]] = {"ok": app.handler(event, Context())}
        except Exception as exc:
            out[name.rsplit("/", 1)[-1]] = {"error": f"{type(exc).__name__}: {exc}"}
    print("@@" + json.dumps(out))
    """
)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    # Per test: moto servers in one process share state, so two stacks may not overlap.
    running = start(bind="127.0.0.1")
    yield running
    running.stop()


def declared(fn: str) -> set[str]:
    template = load_template()
    shared = template["Globals"]["Function"]["Environment"]["Variables"]
    own = template["Resources"][fn]["Properties"].get("Environment", {}).get("Variables", {})
    return set(shared) | set(own)


def test_the_env_file_sets_declared_variables_pointing_at_the_local_servers(
    stack: LocalStack, tmp_path: Path
) -> None:
    path = stack.write_env_file(tmp_path / "env.json", container_host="host.docker.internal")
    data = json.loads(path.read_text())
    assert set(data) == set(FUNCTIONS)
    for fn, values in data.items():
        assert set(values) == declared(fn)  # SAM would drop an undeclared one silently
        assert values["AWS_ENDPOINT_URL"] == f"http://host.docker.internal:{stack.moto_port}"
        assert values["FASHION_SEARCH_AWS__PINECONE_HOST"].startswith(
            f"http://host.docker.internal:{stack.pinecone_port}/hosts/"
        )
        assert all(isinstance(v, str) and "${" not in v for v in values.values())


def _run(stack: LocalStack, fn: str, events: list[str], tmp_path: Path) -> dict[str, Any]:
    env_file = stack.write_env_file(tmp_path / "env.json", container_host="127.0.0.1")
    env = json.loads(env_file.read_text())[fn]
    env |= {  # what the Lambda runtime (and SAM's container) sets besides the template's
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": fn,
        "FASHION_SEARCH_MODEL__CACHE_DIR": str(tmp_path / "models"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT / "layers" / "core"),
    }
    runner = tmp_path / "runner.py"
    runner.write_text(_RUNNER)
    code_dir = ROOT / "functions" / ("ingest" if fn == "IngestFunction" else "api")
    proc = subprocess.run(
        [sys.executable, str(runner), str(code_dir), *(str(EVENTS / e) for e in events)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("@@")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1][2:])
    return result


def _status(result: dict[str, Any]) -> int:
    assert "ok" in result, result
    return int(result["ok"]["statusCode"])


def test_every_event_file_drives_its_handler_against_the_local_stack(
    stack: LocalStack, tmp_path: Path
) -> None:
    events = sorted(p.name for p in EVENTS.glob("*.json"))
    ingest_events = [e for e in events if e.startswith("ingest_")]
    api_events = [e for e in events if e.startswith("api_")]
    assert len(ingest_events) + len(api_events) == len(events)  # none left untried

    created = ["ingest_s3_test_event.json", "ingest_s3_put.json", "ingest_sqs_batch.json"]
    got = _run(stack, "IngestFunction", created, tmp_path)
    assert got["ingest_s3_put.json"]["ok"]["counts"]["indexed"] == 1, got
    assert sum(got["ingest_s3_test_event.json"]["ok"]["counts"].values()) == 0
    assert got["ingest_sqs_batch.json"]["ok"] == {"batchItemFailures": []}

    got = _run(stack, "ApiFunction", api_events, tmp_path)
    text = got["api_v2_text.json"]["ok"]
    assert _status(got["api_v2_text.json"]) == 200, text
    assert [r["image_id"] for r in json.loads(text["body"])["results"]] == ["red flower é"]
    assert _status(got["api_v2_no_key.json"]) == 401
    assert _status(got["api_v2_upload.json"]) == 200
    assert _status(got["api_rest_text.json"]) == 200
    assert _status(got["api_rest_docs.json"]) == 200
    # A named stage's path prefix is stripped only with API_GATEWAY_BASE_PATH, which the
    # template's $default-stage HTTP API does not set: the JSON 404 of an unknown route.
    health = got["api_v2_stage_health.json"]["ok"]
    assert _status(got["api_v2_stage_health.json"]) == 404 and "error" in health["body"]

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{stack.moto_port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.delete_object(Bucket=stack.bucket, Key="images/red flower é.jpg")  # a delete marker
    removed = [e for e in ingest_events if e not in created]
    assert removed == ["ingest_s3_delete.json", "ingest_s3_delete_marker.json"]
    got = _run(stack, "IngestFunction", removed, tmp_path)
    assert got["ingest_s3_delete.json"]["ok"]["counts"]["deleted"] == 1, got
    assert "ok" in got["ingest_s3_delete_marker.json"], got


def test_stopping_leaves_nothing_for_the_next_stack_in_this_process() -> None:
    """moto's servers in one process share one state: a second stack (or the package tests'
    stand-in stack) must be able to create the same names again."""
    first = start(bind="127.0.0.1")
    first.stop()
    second = start(bind="127.0.0.1")  # ResourceExistsException if the secrets survived
    second.stop()


def test_the_api_key_in_the_events_is_the_one_in_the_secret(stack: LocalStack) -> None:
    sample = json.loads((EVENTS / "api_v2_text.json").read_text())
    assert sample["headers"]["x-api-key"] == EVENT_API_KEY
