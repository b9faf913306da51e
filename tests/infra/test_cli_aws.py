"""`fashion-search aws ...` bootstrap commands: each does its job once and nothing the second
time (moto for AWS, the local Pinecone server for the index)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import typer
from fashion_search.api.auth import parse_secret
from fashion_search.cli import aws as aws_cli
from fashion_search.errors import ConfigError
from fashion_search.model.loader import fetch_s3_bundle
from typer.testing import CliRunner

REGION = "us-east-1"


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    aws_cli.register(app)

    @app.callback()
    def _root() -> None:  # a group, so "aws" stays a subcommand
        pass

    return app


def invoke(app: typer.Typer, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["aws", *args], input=stdin)


def test_upload_model_is_idempotent_and_mirrors_the_bundle(
    cli: typer.Typer, s3_bucket: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    files = [p for p in tiny_bundle.rglob("*") if p.is_file() and not p.name.startswith(".")]
    first = invoke(cli, "upload-model", str(tiny_bundle), "--bucket", s3_bucket, "--name", "t")
    assert first.exit_code == 0, first.output
    assert f"{len(files)} uploaded, 0 unchanged, 0 removed" in first.output

    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=s3_bucket, Key="models/t/visual/old.onnx", Body=b"stale")
    again = invoke(cli, "upload-model", str(tiny_bundle), "--bucket", s3_bucket, "--name", "t")
    assert again.exit_code == 0, again.output
    assert f"0 uploaded, {len(files)} unchanged, 1 removed" in again.output

    # What the Lambda copies at cold start is the bundle, byte for byte.
    copied = fetch_s3_bundle(f"s3://{s3_bucket}/models/t/", cache_dir=tmp_path, client=s3)
    for path in files:
        assert (copied / path.relative_to(tiny_bundle)).read_bytes() == path.read_bytes()
    assert not (copied / "visual" / "old.onnx").exists()


def test_a_bundle_too_big_for_tmp_is_refused_before_copying(
    cli: typer.Typer,
    s3_bucket: str,
    tiny_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SnapStart caps /tmp at 512 MB: a bundle that cannot fit gets a message naming the fix
    instead of a copy that dies halfway with ENOSPC."""
    import shutil

    done = invoke(cli, "upload-model", str(tiny_bundle), "--bucket", s3_bucket, "--name", "t")
    assert done.exit_code == 0, done.output
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="models/t/")["Contents"]
    size = sum(o["Size"] for o in listed)
    real = shutil.disk_usage

    def small_tmp(path: Any) -> Any:
        return real(path)._replace(free=size - 1)  # one byte short

    monkeypatch.setattr(shutil, "disk_usage", small_tmp)
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match="int8 bundle") as caught:
        fetch_s3_bundle(f"s3://{s3_bucket}/models/t/", cache_dir=cache, client=s3)
    assert caught.value.field == "model.s3_uri"
    assert not cache.exists() or not any(cache.rglob("*.onnx"))
    monkeypatch.setattr(shutil, "disk_usage", real)
    copied = fetch_s3_bundle(f"s3://{s3_bucket}/models/t/", cache_dir=cache, client=s3)
    assert (copied / "config.json").is_file()


def test_put_secret_creates_then_leaves_then_updates(cli: typer.Typer, moto_aws: None) -> None:
    name = "fashion-search/pinecone-api-key"
    outputs = [
        invoke(cli, "put-secret", name, "--from-stdin", stdin=value)
        for value in ("pc-key-1\n", "pc-key-1\n", "pc-key-2\n")
    ]
    assert [o.exit_code for o in outputs] == [0, 0, 0]
    assert [o.output.split(": ")[-1].strip() for o in outputs] == [
        "created",
        "unchanged",
        "updated",
    ]
    assert all("pc-key" not in o.output for o in outputs)
    stored = boto3.client("secretsmanager", region_name=REGION).get_secret_value(SecretId=name)
    assert stored["SecretString"] == "pc-key-2"


def test_put_secret_refuses_an_empty_value(cli: typer.Typer, moto_aws: None) -> None:
    result = invoke(cli, "put-secret", "x/empty", "--from-stdin", stdin="  \n")
    assert isinstance(result.exception, ConfigError)


def test_new_api_key_adds_keys_for_rotation(cli: typer.Typer, moto_aws: None) -> None:
    name = "fashion-search/api-keys"
    first = invoke(cli, "new-api-key", name)
    second = invoke(cli, "new-api-key", name)
    keys = [first.output.strip(), second.output.strip()]
    assert first.exit_code == second.exit_code == 0
    assert len(set(keys)) == 2 and all(len(k) >= 40 for k in keys)
    sm = boto3.client("secretsmanager", region_name=REGION)
    assert parse_secret(sm.get_secret_value(SecretId=name)["SecretString"]) == keys
    replaced = invoke(cli, "new-api-key", name, "--replace")
    stored = parse_secret(sm.get_secret_value(SecretId=name)["SecretString"])
    assert stored == [replaced.output.strip()]


def test_create_index_uses_the_bundle_dimension_and_is_idempotent(
    cli: typer.Typer, pinecone_server: str, pinecone_fake: Any, tiny_bundle: Path
) -> None:
    dim = json.loads((tiny_bundle / "config.json").read_text())["embed_dim"]
    args = ["--bundle", str(tiny_bundle), "--name", "cli-index", "--api-host", pinecone_server]
    args += ["--api-key", pinecone_fake.api_key]
    for _ in range(2):
        result = invoke(cli, "create-index", *args)
        assert result.exit_code == 0, result.output
        assert f"index cli-index: {dim}-d cosine, 0 vectors" in result.output
    assert pinecone_fake.indexes["cli-index"].dimension == dim

    other = ["--dimension", str(dim + 1), "--name", "cli-index", "--api-host", pinecone_server]
    clash = invoke(cli, "create-index", *other, "--api-key", pinecone_fake.api_key)
    assert isinstance(clash.exception, ConfigError)
    assert f"{dim}-d" in clash.exception.message


def test_create_index_needs_a_dimension(cli: typer.Typer) -> None:
    result = invoke(cli, "create-index", "--api-key", "k")
    assert isinstance(result.exception, ConfigError)
    assert "--dimension" in result.exception.message


def test_env_prints_the_settings_of_a_deployed_stack(cli: typer.Typer, moto_aws: None) -> None:
    template = {
        "Parameters": {"PineconeIndexName": {"Type": "String", "Default": "idx"}},
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "BucketName": {"Value": "my-images"},
            "CatalogTableName": {"Value": "my-table"},
            "IngestQueueUrl": {"Value": "https://sqs.us-east-1.amazonaws.com/1/ingest"},
            "ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/"},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="fs", TemplateBody=json.dumps(template)
    )
    result = invoke(cli, "env", "--stack", "fs")
    assert result.exit_code == 0, result.output
    lines = set(result.output.splitlines())
    assert "export FASHION_SEARCH_HOME='aws'" in lines
    assert "export FASHION_SEARCH_AWS__BUCKET='my-images'" in lines
    assert "export FASHION_SEARCH_AWS__TABLE='my-table'" in lines
    assert "export FASHION_SEARCH_AWS__PINECONE_INDEX='idx'" in lines
    # `aws backfill` sends to the stack's ingest queue.
    queue = "https://sqs.us-east-1.amazonaws.com/1/ingest"
    assert f"export FASHION_SEARCH_AWS__INGEST_QUEUE_URL='{queue}'" in lines
