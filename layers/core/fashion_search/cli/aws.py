"""``fashion-search aws ...``: bootstrap a deployment (docs/deploy.md). Every command is
idempotent: running it twice changes nothing the second time.

- ``create-index``  the Pinecone serverless index, with the bundle's dimension (cosine)
- ``upload-model``  a bundle to s3://BUCKET/models/NAME/, file by file, skipping equal hashes
- ``put-secret``    a secret value (the Pinecone key) into Secrets Manager, by name
- ``new-api-key``   add a generated API key to the API-keys secret (rotation keeps old keys)
- ``env``           print the FASHION_SEARCH_* settings of a deployed stack, so that
                    ``eval "$(fashion-search aws env)"; fashion-search load styles.csv images/``
                    loads a catalog into the deployed bucket (the ``load`` command, home=aws)
- ``backfill``      queue what the bucket already holds for the ingest function
                    (``cli/aws_backfill.py``; a rerun queues only what is still missing)
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from fashion_search.errors import ConfigError
from fashion_search.settings import ENV_PREFIX, Settings

aws_app = typer.Typer(help="Bootstrap and inspect the AWS deployment.", no_args_is_help=True)

DEFAULT_PINECONE_SECRET = "fashion-search/pinecone-api-key"
DEFAULT_API_KEY_SECRET = "fashion-search/api-keys"
SHA256_META = "sha256"  # user metadata on each uploaded model file

Region = Annotated[str | None, typer.Option(help="AWS region (default: your AWS config).")]


def _client(service: str, region: str | None) -> Any:
    import boto3

    settings = Settings()
    return boto3.client(
        service,
        region_name=region or settings.aws.region,
        endpoint_url=settings.aws.endpoint_url,
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _secret_value(name: str, region: str | None) -> str | None:
    """The secret's current string, or None when it does not exist."""
    client = _client("secretsmanager", region)
    try:
        return str(client.get_secret_value(SecretId=name)["SecretString"])
    except client.exceptions.ResourceNotFoundException:
        return None


def _store_secret(name: str, value: str, region: str | None) -> str:
    """Create or update ``name``; returns what happened (the value is never printed)."""
    client = _client("secretsmanager", region)
    current = _secret_value(name, region)
    if current is None:
        client.create_secret(Name=name, SecretString=value)
        return "created"
    if current == value:
        return "unchanged"
    client.put_secret_value(SecretId=name, SecretString=value)
    return "updated"


@aws_app.command("create-index")
def create_index(
    bundle: Annotated[
        Path | None, typer.Option(help="Model bundle: the index gets its dimension.")
    ] = None,
    dimension: Annotated[int | None, typer.Option(min=1, help="Instead of --bundle.")] = None,
    name: Annotated[str, typer.Option(help="Index name.")] = "fashion-search",
    cloud: Annotated[str, typer.Option(help="Pinecone cloud.")] = "aws",
    pinecone_region: Annotated[str, typer.Option(help="Pinecone region.")] = "us-east-1",
    secret_name: Annotated[
        str, typer.Option(help="Read the Pinecone key from this secret...")
    ] = DEFAULT_PINECONE_SECRET,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="PINECONE_API_KEY", help="...or take it from here.", show_default=False
        ),
    ] = None,
    api_host: Annotated[
        str | None, typer.Option(help="Control-plane URL (Pinecone Local, tests).")
    ] = None,
    region: Region = None,
) -> None:
    """Create the Pinecone serverless index (cosine) if missing; check its dimension if not."""
    from pinecone import Pinecone

    from fashion_search.model.bundle import Bundle
    from fashion_search.stores.pinecone_index import PineconeVectorIndex

    if dimension is None:
        if bundle is None:
            raise ConfigError("give --bundle (its embed_dim is used) or --dimension")
        dimension = Bundle.open(bundle).embed_dim
        if dimension is None:
            raise ConfigError(f"{bundle}/config.json has no embed_dim: pass --dimension")
    key = api_key or _secret_value(secret_name, region)
    if not key:
        raise ConfigError(f"no Pinecone key: set PINECONE_API_KEY or create secret {secret_name}")
    client = Pinecone(api_key=key, host=api_host) if api_host else None
    try:
        index = PineconeVectorIndex(
            name,
            api_key=key,
            dimension=dimension,
            cloud=cloud,
            region=pinecone_region,
            client=client,
        )
        try:
            typer.echo(f"index {name}: {dimension}-d cosine, {index.count()} vectors")
        finally:
            index.close()
    finally:
        if client is not None:  # the adapter closes only a client it made itself
            client.close()


@aws_app.command("upload-model")
def upload_model(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (immich layout).")],
    bucket: Annotated[str, typer.Option(help="The stack's BucketName output.")],
    name: Annotated[str, typer.Option(help="Model name (the stack's ModelName).")] = "vit-b-32",
    region: Region = None,
) -> None:
    """Copy a bundle to s3://BUCKET/models/NAME/, skipping files already there.

    Files whose sha256 matches are skipped and objects no longer in the bundle are removed, so
    the prefix equals the bundle."""
    from fashion_search.model.bundle import Bundle

    opened = Bundle.open(bundle)
    client = _client("s3", region)
    prefix = f"models/{name}/"
    local = {
        p.relative_to(opened.path).as_posix(): p
        for p in sorted(opened.path.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(opened.path).parts)
    }
    uploaded = unchanged = 0
    total = 0
    for rel, path in local.items():
        key = prefix + rel
        digest = _file_sha256(path)
        total += path.stat().st_size
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            if head.get("Metadata", {}).get(SHA256_META) == digest:
                unchanged += 1
                continue
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {SHA256_META: digest}})
        uploaded += 1
        typer.echo(f"uploaded {key}", err=True)
    stale = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if obj["Key"][len(prefix) :] not in local
    ]
    for key in stale:
        client.delete_object(Bucket=bucket, Key=key)
    typer.echo(
        f"s3://{bucket}/{prefix} model {opened.model_id}: {uploaded} uploaded, "
        f"{unchanged} unchanged, {len(stale)} removed ({total / 1e6:.1f} MB)"
    )


@aws_app.command("put-secret")
def put_secret(
    name: Annotated[str, typer.Argument(help="Secret name.")] = DEFAULT_PINECONE_SECRET,
    from_stdin: Annotated[
        bool, typer.Option("--from-stdin", help="Read the value from stdin.")
    ] = False,
    region: Region = None,
) -> None:
    """Store a secret (the Pinecone API key by default); prompts without echo."""
    if from_stdin:
        value = sys.stdin.read().strip()
    else:
        value = str(typer.prompt(f"value for {name}", hide_input=True)).strip()
    if not value:
        raise ConfigError("refusing to store an empty secret")
    typer.echo(f"secret {name}: {_store_secret(name, value, region)}")


@aws_app.command("new-api-key")
def new_api_key(
    name: Annotated[str, typer.Argument(help="API-keys secret name.")] = DEFAULT_API_KEY_SECRET,
    replace: Annotated[
        bool, typer.Option("--replace", help="Drop the keys stored before.")
    ] = False,
    region: Region = None,
) -> None:
    """Generate an API key, add it to the API-keys secret and print it once.

    The secret holds JSON: an object whose "api_keys" is the list of valid keys."""
    from fashion_search.api.auth import parse_secret

    current = _secret_value(name, region)
    keys = [] if replace or current is None else parse_secret(current)
    key = secrets.token_urlsafe(32)
    _store_secret(name, json.dumps({"api_keys": [*keys, key]}), region)
    typer.echo(key)


@aws_app.command("env")
def stack_env(
    stack: Annotated[str, typer.Option(help="Stack name.")] = "fashion-search",
    region: Region = None,
) -> None:
    """Print the deployed stack's settings as `export FASHION_SEARCH_...` lines.

    For `load`, `reconcile` or `serve` against AWS from this machine."""
    client = _client("cloudformation", region)
    (described,) = client.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    params = {p["ParameterKey"]: p["ParameterValue"] for p in described.get("Parameters", [])}
    values = {
        "HOME": "aws",
        "AWS__BUCKET": outputs.get("BucketName"),
        "AWS__INGEST_PREFIX": outputs.get("IngestPrefix"),
        "AWS__TABLE": outputs.get("CatalogTableName"),
        "AWS__INGEST_QUEUE_URL": outputs.get("IngestQueueUrl"),
        "AWS__PINECONE_INDEX": params.get("PineconeIndexName"),
        "AWS__PINECONE_SECRET_NAME": params.get("PineconeSecretName"),
        "API__PUBLIC_URL": outputs.get("ApiUrl"),
    }
    for key, value in values.items():
        if value:
            typer.echo(f"export {ENV_PREFIX}{key}='{value}'")


def register(app: typer.Typer) -> None:
    app.add_typer(aws_app, name="aws")
