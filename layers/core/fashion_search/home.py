"""Where the stores live: the one place that turns ``Settings`` into adapters.

Adapters are imported inside the branch that needs them, so the embedded home never imports
boto3 or pinecone (a laptop install without the ``aws`` extra works) and a Lambda does not pay
for SQLite or the embedded index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fashion_search.errors import ConfigError
from fashion_search.settings import ENV_PREFIX, AwsSettings, Home, Settings
from fashion_search.stores.blobs import BlobStore
from fashion_search.stores.catalog import Catalog
from fashion_search.stores.port import Closeable
from fashion_search.stores.vectors import VectorIndex

log = logging.getLogger(__name__)


@dataclass
class Stores(Closeable):
    blobs: BlobStore
    catalog: Catalog
    vectors: VectorIndex
    namespace: str  # the vector namespace every caller uses
    ingest_prefix: str  # blob keys under it are ingested; image ids are relative to it

    def close(self) -> None:
        """Release connections and files (every port has ``close``; a no-op where nothing is
        held)."""
        for store in (self.vectors, self.catalog, self.blobs):
            store.close()


def open_stores(settings: Settings, *, dimension: int, rebuilding_index: bool = False) -> Stores:
    """The stores of ``settings.home``; raises ``ConfigError`` naming any missing setting.

    An embedded index whose files are damaged raises ``IndexDamaged`` (naming ``reindex``);
    ``rebuilding_index`` (``reindex`` only) opens it with the damaged namespaces emptied."""
    if dimension < 1:
        raise ConfigError(f"the vector dimension must be positive, got {dimension}")
    if settings.home is Home.AWS:
        return _open_aws(settings, dimension=dimension)
    return _open_embedded(settings, dimension=dimension, rebuilding_index=rebuilding_index)


def public_url(settings: Settings) -> str:
    """The base URL browsers use to reach the API (image URLs of the embedded home)."""
    api = settings.api
    return (api.public_url or f"http://{api.host}:{api.port}").rstrip("/")


def _open_embedded(settings: Settings, *, dimension: int, rebuilding_index: bool) -> Stores:
    from fashion_search.stores.embedded.folder_blobs import FolderBlobStore
    from fashion_search.stores.embedded.sqlite_catalog import SqliteCatalog
    from fashion_search.stores.embedded.vector_index import (
        AnnParams,
        EmbeddedVectorIndex,
        HalfParams,
    )
    from fashion_search.types import TAG_FIELDS

    embedded = settings.embedded
    try:
        embedded.data_dir.mkdir(parents=True, exist_ok=True)
        embedded.images_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot use data directory {embedded.data_dir} ({exc.strerror}): "
            f"set {ENV_PREFIX}EMBEDDED__DATA_DIR to a writable folder",
            field=f"{ENV_PREFIX}EMBEDDED__DATA_DIR",
        ) from exc
    log.info("embedded home in %s", embedded.data_dir)
    return Stores(
        blobs=FolderBlobStore(embedded.images_dir, url_base=public_url(settings)),
        catalog=SqliteCatalog(embedded.catalog_path),
        vectors=EmbeddedVectorIndex(
            embedded.index_dir,
            dimension=dimension,
            ann=AnnParams(
                min_vectors=embedded.ann_min_vectors or None, ef_search=embedded.ann_ef_search
            ),
            filter_fields=TAG_FIELDS,  # their filter columns are built when the index loads
            half=HalfParams() if embedded.half_rows else None,
            drop_damaged=rebuilding_index,
        ),
        namespace="",
        ingest_prefix="",
    )


def _aws_clients(aws: AwsSettings) -> Callable[[str], Any]:
    """A maker of boto3 clients for the AWS home's region and endpoint."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    session = boto3.session.Session(region_name=aws.region)
    # Standard retry mode backs off on throttling; short timeouts keep a stuck call inside
    # the Lambda's own time limit.
    config = Config(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10
    )

    def client(service: str) -> Any:
        # SigV4 presigned URLs: SigV2 is deprecated and refused in newer regions.
        extra = Config(signature_version="s3v4") if service == "s3" else None
        try:
            return session.client(
                service,
                endpoint_url=aws.endpoint_url,
                config=config.merge(extra) if extra else config,
            )
        except NoRegionError as exc:
            raise ConfigError(
                f"no AWS region: set {ENV_PREFIX}AWS__REGION (or AWS_REGION)",
                field=f"{ENV_PREFIX}AWS__REGION",
            ) from exc

    return client


@dataclass
class UploadStores:
    """What the catalog loader needs in the AWS home: the bucket and the catalog. The cloud
    embeds (S3 -> SQS -> the ingest function), so no model and no Pinecone are opened."""

    blobs: BlobStore
    catalog: Catalog
    ingest_prefix: str

    def close(self) -> None:
        return None  # boto3 clients hold no files; their pools close with the process


def open_upload_stores(settings: Settings) -> UploadStores:
    aws = settings.aws
    from fashion_search.stores.aws.dynamodb_catalog import DynamoDBCatalog
    from fashion_search.stores.aws.s3_blobs import S3BlobStore

    client = _aws_clients(aws)
    return UploadStores(
        blobs=S3BlobStore(
            _required(aws.bucket, "BUCKET"),
            client=client("s3"),
            presign_expiry_s=aws.presign_expiry_s,
        ),
        catalog=DynamoDBCatalog(_required(aws.table, "TABLE"), client=client("dynamodb")),
        ingest_prefix=aws.ingest_prefix,
    )


def _open_aws(settings: Settings, *, dimension: int) -> Stores:
    aws = settings.require_aws()
    from fashion_search.stores.aws.dynamodb_catalog import DynamoDBCatalog
    from fashion_search.stores.aws.s3_blobs import S3BlobStore
    from fashion_search.stores.pinecone_index import PineconeVectorIndex

    client = _aws_clients(aws)

    log.info("AWS home: bucket %s, table %s, index %s", aws.bucket, aws.table, aws.pinecone_index)
    return Stores(
        blobs=S3BlobStore(
            _required(aws.bucket, "BUCKET"),
            client=client("s3"),
            presign_expiry_s=aws.presign_expiry_s,
        ),
        catalog=DynamoDBCatalog(_required(aws.table, "TABLE"), client=client("dynamodb")),
        vectors=PineconeVectorIndex(
            _required(aws.pinecone_index, "PINECONE_INDEX"),
            api_key=_pinecone_key(aws, client),
            dimension=dimension,
            host=aws.pinecone_host,
            cloud=aws.pinecone_cloud,
            region=aws.pinecone_region,
        ),
        namespace=aws.pinecone_namespace,
        ingest_prefix=aws.ingest_prefix,
    )


def _pinecone_key(aws: AwsSettings, client: Any) -> str:
    """From Secrets Manager when a secret is named (deployments); else the dev-only key."""
    if aws.pinecone_secret_name:
        from fashion_search.stores.aws.secrets import read_secret

        return read_secret(
            aws.pinecone_secret_name,
            client=client("secretsmanager"),
            setting=f"{ENV_PREFIX}AWS__PINECONE_SECRET_NAME",
        )
    if aws.pinecone_api_key is not None:
        return aws.pinecone_api_key.get_secret_value()
    raise ConfigError(
        f"the AWS home needs {ENV_PREFIX}AWS__PINECONE_SECRET_NAME",
        field=f"{ENV_PREFIX}AWS__PINECONE_SECRET_NAME",
    )


def _required(value: str | None, name: str) -> str:
    if not value:  # require_aws checked it already; this keeps the types honest
        raise ConfigError(
            f"the AWS home needs {ENV_PREFIX}AWS__{name}", field=f"{ENV_PREFIX}AWS__{name}"
        )
    return value
