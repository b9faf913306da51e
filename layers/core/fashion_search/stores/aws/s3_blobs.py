"""The blob store of the AWS home: one S3 bucket, through an injected (or default) boto3 client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fashion_search.errors import FashionSearchError, NotFound, TransientStoreError
from fashion_search.stores.aws.errors import translate_aws_error
from fashion_search.stores.blobs import BlobStore, refuse_over
from fashion_search.types import BlobInfo

# S3's retryable answers (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html);
# any 5xx is treated the same.
_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
# Without s3:ListBucket, S3 answers a missing key with 403, not 404 ("If you don't have the
# s3:ListBucket permission, Amazon S3 returns an HTTP status code 403 Forbidden error",
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html). HEAD has no body, so
# botocore's code is the bare status.
_FORBIDDEN = {"403", "AccessDenied", "Forbidden"}


class S3BlobStore(BlobStore):
    """``BlobStore`` port over ``bucket``; ``url(key)`` is a presigned GET."""

    def __init__(self, bucket: str, *, client: Any = None, presign_expiry_s: int = 3600) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            # SigV4 presigned URLs: SigV2 is deprecated and refused in newer regions.
            client = boto3.client("s3", config=Config(signature_version="s3v4"))
        self.bucket = bucket
        self.presign_expiry_s = presign_expiry_s
        self._client = client

    def _call(self, op: str, key: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, op)(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            error = _translate(exc, f"{op} s3://{self.bucket}/{key}")
            if op in {"head_object", "get_object"} and _code(exc) in _FORBIDDEN:
                error = self._forbidden_or_gone(key, error)
            raise error from exc

    def _forbidden_or_gone(self, key: str, denied: FashionSearchError) -> FashionSearchError:
        """A 403 on a read: ``NotFound`` when listing the key's prefix shows no such object
        (deleted before it was read), else the denial itself, with what to grant."""
        try:
            page = self._client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except (ClientError, BotoCoreError):
            hint = " (a missing key also answers 403 without s3:ListBucket on its prefix)"
            return type(denied)(denied.message + hint)
        if any(obj.get("Key") == key for obj in page.get("Contents", [])):
            return denied
        return NotFound(f"no blob: s3://{self.bucket}/{key} (403 for a key that is not listed)")

    def _put(
        self, key: str, data: bytes, content_type: str | None, metadata: dict[str, str]
    ) -> BlobInfo:
        extra = {"ContentType": content_type} if content_type else {}
        response = self._call("put_object", key, Key=key, Body=data, Metadata=metadata, **extra)
        return BlobInfo(
            key=key,
            size=len(data),
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
            content_type=content_type,
            metadata=metadata,
        )

    def _get(self, key: str, max_bytes: int) -> bytes:
        # GetObject answers with headers first: an object over the cap is refused from its
        # Content-Length and the connection closed before the body is read.
        response = self._call("get_object", key, Key=key)
        body = response["Body"]
        try:
            refuse_over(key, int(response.get("ContentLength", 0)), max_bytes)
            data: bytes = body.read(max_bytes + 1)
        except (BotoCoreError, OSError) as exc:
            raise TransientStoreError(f"reading s3://{self.bucket}/{key} failed: {exc}") from exc
        finally:
            body.close()
        return data

    def _head(self, key: str) -> BlobInfo | None:
        try:
            response = self._call("head_object", key, Key=key)
        except NotFound:
            return None
        modified = response.get("LastModified")
        return BlobInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=_etag(response.get("ETag")),
            version_id=response.get("VersionId"),
            content_type=response.get("ContentType"),
            metadata=dict(response.get("Metadata", {})),
            last_modified=modified.timestamp() if modified is not None else None,
        )

    def _delete(self, key: str) -> None:
        self._call("delete_object", key, Key=key)  # S3 deletes are idempotent

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every object under ``prefix`` in key order; no user metadata (``head`` has it)."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    yield BlobInfo(
                        key=obj["Key"],
                        size=int(obj["Size"]),
                        etag=_etag(obj.get("ETag")),
                        last_modified=obj["LastModified"].timestamp(),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"list s3://{self.bucket}/{prefix}") from exc

    def _url(self, key: str) -> str:
        try:
            url: str = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.presign_expiry_s,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"presign s3://{self.bucket}/{key}") from exc
        return url


def _code(exc: ClientError | BotoCoreError) -> str:
    return (
        str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""
    )


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


def _translate(exc: ClientError | BotoCoreError, what: str) -> FashionSearchError:
    return translate_aws_error(
        exc,
        service="S3",
        what=what,
        transient_codes=_TRANSIENT,
        missing_codes=_MISSING,
        missing_message=f"no blob: {what}",
    )
