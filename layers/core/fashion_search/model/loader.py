"""Build the embedder the settings describe: a local bundle, or one in S3 copied to a cache."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fashion_search.errors import BundleError, ConfigError
from fashion_search.model.bundle import REQUIRED_FILES
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.model.staging import staged_bundle
from fashion_search.settings import Settings

log = logging.getLogger(__name__)


def load_embedder(settings: Settings) -> OnnxClipEmbedder:
    """The configured model, ready to embed (sessions open lazily on first use)."""
    model = settings.model
    if model.s3_uri:
        path = fetch_s3_bundle(
            model.s3_uri, cache_dir=model.cache_dir, endpoint_url=settings.aws.endpoint_url
        )
    else:
        path = model.bundle
    if not path.is_dir():
        raise ConfigError(
            f"model bundle {path} does not exist; set FASHION_SEARCH_MODEL__BUNDLE to a bundle "
            "directory (see `fashion-search model pull` / `model export`)",
            field="model.bundle",
        )
    return OnnxClipEmbedder.from_bundle(
        path,
        intra_op_threads=model.intra_op_threads,
        batch_size=model.batch_size,
        max_image_bytes=settings.limits.max_blob_bytes,
        max_image_pixels=settings.limits.max_image_pixels,
        batch_wait_ms=model.batch_wait_ms,
        spin=model.spin,
    )


def fetch_s3_bundle(
    uri: str, *, cache_dir: Path, endpoint_url: str | None = None, client: Any = None
) -> Path:
    """Copy ``s3://bucket/prefix/`` to ``cache_dir`` once (Lambda cold start) and return the path.

    The copy lands in a temporary directory renamed into place, so a crash mid-copy never leaves
    a half bundle that a later start would trust.
    """
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(
            f"model S3 URI must look like s3://bucket/prefix/, got {uri!r}", field="model.s3_uri"
        )
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    name = Path(prefix.rstrip("/")).name or bucket
    target = cache_dir / f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:8]}" / name
    if all((target / f).is_file() for f in REQUIRED_FILES):
        return target
    if client is None:
        import boto3  # the aws extra; only needed for S3 bundles

        client = boto3.client("s3", endpoint_url=endpoint_url)
    objects = [
        obj
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if obj["Key"][len(prefix) :] and not obj["Key"].endswith("/")
    ]
    if not objects:
        raise BundleError(f"no model files under {uri}")
    _check_room(cache_dir, sum(int(obj.get("Size", 0)) for obj in objects), uri)
    with staged_bundle(target, check=False) as tmp:
        for obj in objects:
            dest = tmp / obj["Key"][len(prefix) :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(dest))
        log.info("copied %d model files from %s to %s", len(objects), uri, target)
    return target


def _check_room(cache_dir: Path, size: int, uri: str) -> None:
    """Refuse, naming the fix, a bundle the cache's file system cannot hold: Lambda's /tmp is
    512 MB under SnapStart, and a copy that fills it would fail halfway with ENOSPC."""
    existing = cache_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if size > free:
        raise ConfigError(
            f"model bundle {uri} is {size / 1e6:.0f} MB but {existing} has {free / 1e6:.0f} MB "
            "free. On Lambda with SnapStart (ApiColdStart=snapstart) /tmp holds at most 512 MB: "
            "deploy the int8 bundle (`fashion-search model quantize`), or choose "
            "ApiColdStart=provisioned or none (docs/deploy.md, 'The first request')",
            field="model.s3_uri",
        )
