"""``open_stores``: the embedded home by default, the AWS home (moto + the Pinecone test server)
when configured, and a start-up error naming the setting when something is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fashion_search.errors import ConfigError
from fashion_search.home import Stores, open_stores
from fashion_search.settings import Settings
from fashion_search.stores.aws.dynamodb_catalog import DynamoDBCatalog
from fashion_search.stores.aws.s3_blobs import S3BlobStore
from fashion_search.stores.embedded.folder_blobs import FolderBlobStore
from fashion_search.stores.embedded.sqlite_catalog import SqliteCatalog
from fashion_search.stores.embedded.vector_index import EmbeddedVectorIndex
from fashion_search.types import CatalogItem, VectorRecord

PINECONE_KEY = "test-key"  # the key the Pinecone test server accepts


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ``.env`` from the working directory: run where there is none."""
    monkeypatch.chdir(tmp_path)


def embedded_settings(data_dir: Path, **api: Any) -> Settings:
    return Settings.model_validate({"embedded": {"data_dir": data_dir}, "api": api})


def test_embedded_home_is_the_default_and_works(tmp_path: Path) -> None:
    with open_stores(
        embedded_settings(tmp_path / "data", public_url="https://x.test/"), dimension=4
    ) as stores:
        check_embedded_stores(stores, tmp_path)


def check_embedded_stores(stores: Stores, tmp_path: Path) -> None:
    assert isinstance(stores, Stores)
    assert isinstance(stores.blobs, FolderBlobStore)
    assert isinstance(stores.catalog, SqliteCatalog)
    assert isinstance(stores.vectors, EmbeddedVectorIndex)
    assert (stores.namespace, stores.ingest_prefix) == ("", "")
    stores.blobs.put("a b.jpg", b"bytes")
    assert (tmp_path / "data" / "images" / "a b.jpg").read_bytes() == b"bytes"
    assert stores.blobs.url("a b.jpg") == "https://x.test/files/a%20b.jpg"
    stores.catalog.put(CatalogItem(image_id="a b", key="a b.jpg"))
    assert (tmp_path / "data" / "catalog.sqlite").is_file()
    stores.vectors.upsert([VectorRecord("a b", np.array([1, 0, 0, 0], np.float32))])
    assert stores.vectors.count() == 1 and (tmp_path / "data" / "index").is_dir()


def test_embedded_url_defaults_to_the_api_host_and_port(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, host="127.0.0.1", port=8123)
    assert (
        open_stores(settings, dimension=4).blobs.url("k.jpg") == "http://127.0.0.1:8123/files/k.jpg"
    )


def test_embedded_home_does_not_import_aws_or_pinecone(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from fashion_search.home import open_stores; "
        "from fashion_search.settings import Settings; "
        f"open_stores(Settings(embedded={{'data_dir': Path({str(tmp_path)!r})}}), dimension=4); "
        "print(sorted(m for m in ('boto3', 'botocore', 'pinecone') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unwritable_data_dir_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="FASHION_SEARCH_EMBEDDED__DATA_DIR"):
        open_stores(embedded_settings(tmp_path / "file"), dimension=4)


def test_aws_home_lists_every_missing_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        open_stores(Settings(home="aws"), dimension=4)  # type: ignore[arg-type]
    for name in ("BUCKET", "TABLE", "PINECONE_INDEX", "PINECONE_SECRET_NAME"):
        assert f"FASHION_SEARCH_AWS__{name}" in caught.value.message


def aws_settings(**aws: Any) -> Settings:
    base = {"bucket": "fashion-search-test-images", "table": "fashion-search-test-catalog"}
    return Settings.model_validate(
        {"home": "aws", "aws": {**base, "pinecone_index": "default", **aws}}
    )


@pytest.fixture
def aws_ready(s3_bucket: str, dynamodb_catalog_table: str, pinecone_server: str) -> str:
    return pinecone_server


@pytest.mark.parametrize("secret", [PINECONE_KEY, json.dumps({"api_key": PINECONE_KEY})])
def test_aws_home_reads_the_pinecone_key_from_secrets_manager(
    aws_ready: str, secret_name: Callable[[str, str], str], secret: str
) -> None:
    name = secret_name("fashion-search/pinecone", secret)
    settings = aws_settings(
        region="us-east-1", pinecone_secret_name=name, pinecone_host=aws_ready, ingest_prefix="in/"
    )
    with open_stores(settings, dimension=4) as stores:
        check_aws_stores(stores)


def check_aws_stores(stores: Stores) -> None:
    assert isinstance(stores.blobs, S3BlobStore) and isinstance(stores.catalog, DynamoDBCatalog)
    assert stores.ingest_prefix == "in/"
    stores.blobs.put("in/a.jpg", b"bytes")
    assert stores.blobs.get("in/a.jpg", max_bytes=10) == b"bytes"
    stores.catalog.put(CatalogItem(image_id="a", key="in/a.jpg"))
    assert stores.catalog.count() == 1
    stores.vectors.upsert([VectorRecord("a", np.array([0, 1, 0, 0], np.float32))])
    assert list(stores.vectors.fetch(["a"])) == ["a"]


def test_aws_home_with_a_missing_secret_names_the_setting(moto_aws: None) -> None:
    settings = aws_settings(region="us-east-1", pinecone_secret_name="absent/secret")
    with pytest.raises(ConfigError, match="FASHION_SEARCH_AWS__PINECONE_SECRET_NAME"):
        open_stores(settings, dimension=4)


def test_aws_home_without_a_region_names_the_setting(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="FASHION_SEARCH_AWS__REGION"):
        open_stores(aws_settings(pinecone_api_key="k"), dimension=4)


def test_aws_home_honours_the_endpoint_url_and_the_dev_key(aws_ready: str) -> None:
    settings = aws_settings(
        region="eu-west-1",
        endpoint_url="http://127.0.0.1:4566",
        pinecone_api_key=PINECONE_KEY,
        pinecone_host=aws_ready,
        presign_expiry_s=120,
    )
    with open_stores(settings, dimension=4) as stores:
        url = stores.blobs.url("images/a.jpg")
    assert url.startswith("http://127.0.0.1:4566/fashion-search-test-images/images/a.jpg?")
    assert "X-Amz-Expires=120" in url and "eu-west-1" in url


def test_embedded_ann_threshold_comes_from_the_settings(tmp_path: Path) -> None:
    vector = np.array([1, 0, 0, 0], np.float32)
    for threshold, engines in ((0, {"exact"}), (1, {"ann", "exact (ann building)"})):
        settings = Settings.model_validate(
            {"embedded": {"data_dir": tmp_path / str(threshold), "ann_min_vectors": threshold}}
        )
        with open_stores(settings, dimension=4) as stores:
            stores.vectors.upsert([VectorRecord("a", vector)])
            assert isinstance(stores.vectors, EmbeddedVectorIndex)
            assert stores.vectors.engine() in engines


def test_embedded_fp16_rows_come_from_the_settings(tmp_path: Path) -> None:
    vector = np.array([1, 0, 0, 0], np.float32)
    for on in (False, True):
        settings = Settings.model_validate(
            {"embedded": {"data_dir": tmp_path / str(on), "half_rows": on}}
        )
        with open_stores(settings, dimension=4) as stores:
            assert isinstance(stores.vectors, EmbeddedVectorIndex)
            assert (stores.vectors.half is not None) is on
            stores.vectors.upsert([VectorRecord("a", vector)])
            assert [m.id for m in stores.vectors.query(vector, top_k=1)] == ["a"]
