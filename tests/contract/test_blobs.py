"""One contract for the blob port, run against the folder store (for real) and S3 (under moto)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests
from botocore.exceptions import ClientError
from fashion_search.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StoreError,
    TransientStoreError,
)
from fashion_search.stores.aws.s3_blobs import S3BlobStore
from fashion_search.stores.blobs import BlobStore
from fashion_search.stores.embedded.folder_blobs import FolderBlobStore

URL_BASE = "http://127.0.0.1:8000"
UNICODE_KEY = "images/tops/red flower é+%.jpg"


@pytest.fixture(params=["folder", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "folder":
        return FolderBlobStore(tmp_path / "images", url_base=URL_BASE + "/")
    bucket = request.getfixturevalue("s3_bucket")
    return S3BlobStore(bucket, client=request.getfixturevalue("s3_client"), presign_expiry_s=600)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.mark.parametrize("key", ["images/15970.jpg", UNICODE_KEY, "top level.png"])
def test_put_get_head_round_trip(blobs: BlobStore, key: str) -> None:
    data = os.urandom(3000)
    info = blobs.put(key, data, content_type="image/jpeg", metadata={"Source": "loader", "id": "7"})
    assert (info.key, info.size, info.etag) == (key, 3000, md5(data))
    assert blobs.get(key, max_bytes=3000) == data
    head = blobs.head(key)
    assert head is not None
    assert (head.size, head.etag, head.content_type) == (3000, md5(data), "image/jpeg")
    assert head.metadata == {"source": "loader", "id": "7"}  # keys lower-cased, as S3 does
    assert head.last_modified is not None


def test_overwrite_replaces_bytes_and_metadata(blobs: BlobStore) -> None:
    blobs.put("a.jpg", b"one", metadata={"v": "1"})
    blobs.put("a.jpg", b"second", metadata={"v": "2"})
    assert blobs.get("a.jpg", max_bytes=100) == b"second"
    head = blobs.head("a.jpg")
    assert head is not None and (head.etag, head.metadata) == (md5(b"second"), {"v": "2"})


def test_missing_blob(blobs: BlobStore) -> None:
    assert blobs.head("images/nope.jpg") is None
    with pytest.raises(NotFound):
        blobs.get("images/nope.jpg", max_bytes=10)


def test_get_refuses_a_blob_over_the_cap(blobs: BlobStore) -> None:
    blobs.put("big.jpg", b"x" * 1001)
    with pytest.raises(PayloadTooLarge, match="1001"):
        blobs.get("big.jpg", max_bytes=1000)
    assert blobs.get("big.jpg", max_bytes=1001) == b"x" * 1001
    blobs.put("empty.jpg", b"")
    assert blobs.get("empty.jpg", max_bytes=0) == b""


def test_delete_is_idempotent(blobs: BlobStore) -> None:
    blobs.put("images/d/e.jpg", b"data")
    blobs.delete("images/d/e.jpg")
    blobs.delete("images/d/e.jpg")
    assert blobs.head("images/d/e.jpg") is None
    assert list(blobs.list()) == []


def test_list_by_prefix_in_key_order(blobs: BlobStore) -> None:
    keys = ["images/b.jpg", UNICODE_KEY, "images/a.jpg", "imagesX/c.jpg", "other.txt"]
    for i, key in enumerate(keys):
        blobs.put(key, b"z" * (i + 1))
    listed = list(blobs.list("images/"))
    assert [b.key for b in listed] == sorted(["images/a.jpg", "images/b.jpg", UNICODE_KEY])
    assert [b.size for b in listed] == [3, 1, 2]
    assert [b.etag for b in listed] == [md5(b"zzz"), md5(b"z"), md5(b"zz")]
    assert [b.key for b in blobs.list("images")] == [b.key for b in listed] + ["imagesX/c.jpg"]
    assert len(list(blobs.list())) == 5
    assert list(blobs.list("nothing/")) == []


def test_metadata_must_be_ascii_and_small(blobs: BlobStore) -> None:
    with pytest.raises(InvalidInput, match="ASCII"):
        blobs.put("m.jpg", b"1", metadata={"name": "Röd"})
    with pytest.raises(InvalidInput, match="2048"):
        blobs.put("m.jpg", b"1", metadata={"big": "x" * 3000})
    assert blobs.head("m.jpg") is None


@pytest.mark.parametrize("key", ["", "k" * 1025, "a\x00b"])
def test_every_call_refuses_a_bad_key_by_name(blobs: BlobStore, key: str) -> None:
    """The port checks S3's key rules before any adapter code, for every call and home."""
    calls = [
        lambda: blobs.put(key, b"1"),
        lambda: blobs.get(key, max_bytes=10),
        lambda: blobs.head(key),
        lambda: blobs.delete(key),
        lambda: blobs.url(key),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.field == "key"
    assert list(blobs.list()) == []


def test_a_negative_cap_is_refused_by_name(blobs: BlobStore) -> None:
    blobs.put("a.jpg", b"")
    with pytest.raises(InvalidInput) as caught:
        blobs.get("a.jpg", max_bytes=-1)
    assert caught.value.field == "max_bytes"
    assert blobs.get("a.jpg", max_bytes=0) == b""


def test_url_opens_the_blob(blobs: BlobStore) -> None:
    blobs.put(UNICODE_KEY, b"image bytes", content_type="image/jpeg")
    url = blobs.url(UNICODE_KEY)
    if isinstance(blobs, FolderBlobStore):
        assert url == f"{URL_BASE}/files/images/tops/red%20flower%20%C3%A9%2B%25.jpg"
        assert url == f"{URL_BASE}/files/{quote(UNICODE_KEY)}"
    else:  # a presigned GET that a browser (here: requests, served by moto) can open
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
        assert urlsplit(url).path.endswith(quote(UNICODE_KEY))
        response = requests.get(url, timeout=5)
        assert (response.status_code, response.content) == (200, b"image bytes")


# -- folder only ----------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> FolderBlobStore:
    return FolderBlobStore(tmp_path / "images", url_base=URL_BASE)


BAD_KEYS = ["../secret", "/etc/passwd", "a/../../x", "a//b", "a/./b", "", "dir/", "a\x00b"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_folder_refuses_keys_outside_the_root(folder: FolderBlobStore, key: str) -> None:
    for call in (
        lambda: folder.put(key, b"x"),
        lambda: folder.get(key, max_bytes=10),
        lambda: folder.head(key),
        lambda: folder.delete(key),
        lambda: folder.url(key),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert not (folder.root.parent / "secret").exists()


def test_folder_refuses_keys_that_clash_with_a_folder(folder: FolderBlobStore) -> None:
    folder.put("a.jpg", b"file")
    folder.put("dir/b.jpg", b"nested")
    for key in ("a.jpg/b.jpg", "dir"):
        with pytest.raises(InvalidInput, match="clashes"):
            folder.put(key, b"x")
    assert folder.get("a.jpg", max_bytes=10) == b"file"
    assert list(os.scandir(folder.meta_dir / "tmp")) == []  # no temp file left behind


def test_folder_refuses_symlinks_out_of_the_root(folder: FolderBlobStore, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_bytes(b"private")
    (folder.root / "link.jpg").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(InvalidInput, match="leaves"):
        folder.get("link.jpg", max_bytes=100)
    assert [b.key for b in folder.list()] == []


def test_folder_keeps_sidecars_out_of_the_root(folder: FolderBlobStore) -> None:
    folder.put("images/a b.jpg", b"1", metadata={"k": "v"})
    files = [os.path.join(d, f) for d, _, fs in os.walk(folder.root) for f in fs]
    assert files == [str(folder.root / "images" / "a b.jpg")]


def test_folder_describes_files_dropped_in_by_hand(folder: FolderBlobStore) -> None:
    (folder.root / "new").mkdir()
    (folder.root / "new" / "shoe.png").write_bytes(b"png bytes")
    head = folder.head("new/shoe.png")
    assert head is not None
    assert (head.size, head.etag, head.content_type, head.metadata) == (
        9,
        md5(b"png bytes"),
        "image/png",
        {},
    )
    folder.put("new/shoe.png", b"v1", metadata={"k": "v"})
    (folder.root / "new" / "shoe.png").write_bytes(b"edited by hand")  # sidecar now stale
    head = folder.head("new/shoe.png")
    assert head is not None and (head.etag, head.metadata) == (md5(b"edited by hand"), {})


def test_folder_readers_never_see_a_partial_write(folder: FolderBlobStore) -> None:
    versions = [b"a" * 2_000_000, b"b" * 1_000_000]
    folder.put("k.jpg", versions[0])
    stop = threading.Event()
    bad: list[int] = []

    def read() -> None:
        while not stop.is_set():
            data = folder.get("k.jpg", max_bytes=3_000_000)
            if data not in versions:
                bad.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(30):
        folder.put("k.jpg", versions[i % 2])
    stop.set()
    reader.join()
    assert bad == []


# -- S3 only --------------------------------------------------------------------------------


def test_s3_errors_are_translated(s3_bucket: str, s3_client: Any) -> None:
    with pytest.raises(StoreError, match="absent-bucket") as caught:
        S3BlobStore("absent-bucket", client=s3_client).put("k", b"1")
    assert isinstance(caught.value.__cause__, ClientError)

    class SlowDown:
        def __getattr__(self, name: str) -> Any:
            def fail(**_: Any) -> Any:
                raise ClientError({"Error": {"Code": "SlowDown"}}, "GetObject")

            return fail

    with pytest.raises(TransientStoreError):
        S3BlobStore(s3_bucket, client=SlowDown()).get("k", max_bytes=1)
