"""The one settings object. Nothing else in the project reads ``os.environ``.

Environment variables use the prefix ``FASHION_SEARCH_`` and ``__`` between nested groups, e.g.
``FASHION_SEARCH_HOME=aws``, ``FASHION_SEARCH_AWS__BUCKET=my-images``,
``FASHION_SEARCH_MODEL__BUNDLE=models/demo``. A ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from fashion_search.errors import ConfigError

ENV_PREFIX = "FASHION_SEARCH_"
MiB = 1024 * 1024


class Home(StrEnum):
    """Where the stores live: one machine (default) or the AWS deployment."""

    EMBEDDED = "embedded"
    AWS = "aws"


class ModelSettings(BaseModel):
    # A local bundle directory (immich layout). The committed demo model by default.
    bundle: Path = Path("models/demo")
    # In AWS the bundle lives in S3 (s3://bucket/prefix/) and is copied to cache_dir at cold start.
    s3_uri: str | None = None
    cache_dir: Path = Path("/tmp/fashion-search-models")
    # onnxruntime threads; None lets onnxruntime use every (physical) core, which is right
    # because model runs never overlap: they queue (model/batching.py).
    intra_op_threads: int | None = None
    batch_size: int = Field(default=16, ge=1, le=256)
    # How long a model run may wait for concurrent queries to join its batch, once queries have
    # been seen arriving together. A lone query (the Lambda's one per container) never waits.
    batch_wait_ms: float = Field(default=2.0, ge=0, le=100)
    # onnxruntime's threads busy-wait between parallel sections when true (its own default).
    # Off: between the queue's runs the cores are needed by decoding, the scan and HTTP.
    spin: bool = False


class LimitSettings(BaseModel):
    # Lambda's 6 MB synchronous payload is ~4 MB of raw bytes after base64.
    max_upload_bytes: int = Field(default=4 * MiB, ge=1)
    # Objects ingested from a bucket or folder are read up to this size.
    max_blob_bytes: int = Field(default=32 * MiB, ge=1)
    # Pixels a decoded image may have; above it the decode is refused (decompression bomb).
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    max_text_chars: int = Field(default=1000, ge=1)
    max_top_k: int = Field(default=100, ge=1, le=10_000)


class SearchSettings(BaseModel):
    # Text queries rank by alpha * dense (picture) score + (1 - alpha) * lexical (words) score;
    # 1 is the picture alone, 0 the words alone. The default is the eval's (docs/search.md).
    alpha: float = Field(default=0.5, ge=0, le=1)
    # How many candidates each side brings before fusion (the embedded home's FTS5 and exact
    # scan; Pinecone returns them fused already).
    candidates: int = Field(default=50, ge=1, le=10_000)
    # A text query's best match is "weak" below this dense score; None: calibrated per model
    # from the catalog (the products' own names against their documents, docs/search.md).
    weak_score: float | None = None
    # A best match whose lexical score reaches this (about half the query's words, by idf) is
    # a match whatever its picture says.
    lexical_match: float = Field(default=0.5, ge=0)
    # Where the AWS home keeps the lexical statistics fitted by ``reindex`` (outside the ingest
    # prefix, so writing it triggers no ingest).
    lexical_stats_key: str = "fashion-search/lexical-stats.json"


class FetchSettings(BaseModel):
    allowed_ports: list[int] = [80, 443]
    allowed_schemes: list[str] = ["http", "https"]
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 5.0
    total_timeout_s: float = 10.0
    max_redirects: int = Field(default=3, ge=0, le=10)
    max_bytes: int = Field(default=8 * MiB, ge=1)
    user_agent: str = "fashion-search/0.1 (+image fetch)"


class ApiSettings(BaseModel):
    # Keys accepted in the X-API-Key header. In AWS they come from Secrets Manager instead.
    api_keys: list[SecretStr] = []
    api_key_secret_name: str | None = None
    # Auth is on unless explicitly disabled (local demo only).
    auth_disabled: bool = False
    cors_origins: list[str] = []
    host: str = "127.0.0.1"
    port: int = 8000
    # The URL browsers use to reach this API; image URLs of the embedded home are built on it.
    public_url: str | None = None
    # A REST API stage or custom-domain base path ("/prod"): stripped from request paths by
    # Mangum and used as the app's root_path so /docs finds its openapi.json behind it.
    api_gateway_base_path: str = "/"


class AwsSettings(BaseModel):
    region: str | None = None
    bucket: str | None = None
    # Only objects under this prefix trigger ingest; nothing we run ever writes into it except
    # the catalog loader, on purpose.
    ingest_prefix: str = "images/"
    table: str | None = None
    idempotency_table: str | None = None
    # The stack's ingest queue (output IngestQueueUrl): where `aws backfill` sends its events.
    ingest_queue_url: str | None = None
    pinecone_index: str | None = None
    # The *name* of the Secrets Manager secret holding the Pinecone API key, never the key.
    pinecone_secret_name: str | None = None
    # For local development and tests only: the key itself and an explicit index host.
    pinecone_api_key: SecretStr | None = None
    pinecone_host: str | None = None
    pinecone_namespace: str = ""
    pinecone_cloud: str = "aws"
    pinecone_region: str = "us-east-1"
    endpoint_url: str | None = None  # moto server or LocalStack
    presign_expiry_s: int = 3600


class EmbeddedSettings(BaseModel):
    data_dir: Path = Path("data")
    # From this many vectors an approximate (HNSW) graph answers queries instead of the exact
    # scan (docs/stores-vectors.md); 0 turns it off. ``ann_ef_search`` trades recall for speed.
    ann_min_vectors: int = Field(default=200_000, ge=0)
    ann_ef_search: int = Field(default=1024, ge=1, le=10_000)
    # The exact scan reads fp16 copies of the rows (a derived file beside each segment), with
    # the same results (re-ranked exactly); docs/stores-vectors.md "Speed": why the default.
    half_rows: bool = True

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    home: Home = Home.EMBEDDED
    model: ModelSettings = ModelSettings()
    limits: LimitSettings = LimitSettings()
    search: SearchSettings = SearchSettings()
    fetch: FetchSettings = FetchSettings()
    api: ApiSettings = ApiSettings()
    aws: AwsSettings = AwsSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    log_level: str = "INFO"

    def require_aws(self) -> AwsSettings:
        """The AWS group, after checking everything the AWS home needs is set."""
        missing = [
            f"{ENV_PREFIX}AWS__{name.upper()}"
            for name in ("bucket", "table", "pinecone_index")
            if not getattr(self.aws, name)
        ]
        if not (self.aws.pinecone_secret_name or self.aws.pinecone_api_key):
            missing.append(f"{ENV_PREFIX}AWS__PINECONE_SECRET_NAME")
        if missing:
            raise ConfigError(
                "the AWS home needs these settings: " + ", ".join(missing),
                field=missing[0],
            )
        return self.aws
