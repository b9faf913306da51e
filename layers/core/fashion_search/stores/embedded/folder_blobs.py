"""The blob store of the embedded home: a folder of files, keys are relative paths.

Sidecars (eTag, content type, user metadata) live *outside* the root, in a hidden
``.<root-name>.meta/`` folder next to it, so a watcher on the root never sees them and a user can
drop plain files into the root. Writes are atomic: the bytes go to a temp file in that meta folder
(same filesystem), are fsynced, the sidecar is written for the temp file's (inode, size, mtime),
then ``os.replace`` moves the file into place (a rename keeps inode and mtime). A watcher thus
sees one complete file whose sidecar is already there; a sidecar that does not match the file it
names (a crash between the steps, or a file changed by hand) is ignored and the eTag recomputed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mimetypes
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fashion_search.errors import InvalidInput, NotFound, StoreError
from fashion_search.stores.blobs import BlobStore, check_key, refuse_over
from fashion_search.stores.disk import disk_full, is_disk_full
from fashion_search.stores.durable import fsync_dir
from fashion_search.types import BlobInfo

_CHUNK = 1024 * 1024
_TMP_PREFIX = ".fs-tmp-"  # only used in the root when the meta folder is on another filesystem


class FolderBlobStore(BlobStore):
    """``BlobStore`` port over ``root``; ``url(key)`` points at the API's ``/files/`` route."""

    def __init__(self, root: Path, *, url_base: str) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = self.root.resolve()
        self.meta_dir = self.root.parent / f".{self.root.name}.meta"
        self._tmp_dir = self.meta_dir / "tmp"
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        self.url_base = url_base.rstrip("/")

    # -- keys -------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file of ``key``; refuses anything that could name a file outside the root
        (``list`` reads keys from the disk, so the port's key rules are applied here too)."""
        check_key(key)
        parts = key.split("/")
        bad = [
            p
            for p in parts
            if p in ("", ".", "..") or p.startswith(_TMP_PREFIX) or len(p.encode("utf-8")) > 255
        ]
        if bad:
            raise InvalidInput(
                f"blob key {key!r} must be a relative path without '.', '..' or empty parts",
                field="key",
            )
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self._real_root):  # a symlink pointing outside
            raise InvalidInput(f"blob key {key!r} leaves the image folder", field="key")
        return path

    def _sidecar(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.meta_dir / "blobs" / digest[:2] / f"{digest}.json"

    # -- writes -----------------------------------------------------------------------------

    def _put(
        self, key: str, data: bytes, content_type: str | None, metadata: dict[str, str]
    ) -> BlobInfo:
        path = self._path(key)
        tmp = self._tmp_dir / f"{uuid.uuid4().hex}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return self._write(key, path, tmp, data, content_type, metadata)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            # S3 holds "a.jpg" and "a.jpg/b.jpg" side by side; a file system cannot.
            raise InvalidInput(
                f"blob key {key!r} clashes with a folder or file already in the store", field="key"
            ) from exc
        except OSError as exc:  # disk full, permissions
            if is_disk_full(exc):  # the folder, not the file: one reason for every image
                raise disk_full(self.root, exc) from exc
            raise StoreError(f"cannot write blob {key!r}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _write(
        self,
        key: str,
        path: Path,
        tmp: Path,
        data: bytes,
        content_type: str | None,
        meta: dict[str, str],
    ) -> BlobInfo:
        _write_synced(tmp, data)
        st = tmp.stat()
        record = {
            "key": key,
            "ino": st.st_ino,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "etag": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "content_type": content_type,
            "metadata": meta,
        }
        self._write_sidecar(key, record)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # The root is on another filesystem than the meta folder: stage next to the target.
            tmp.unlink(missing_ok=True)
            staged = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
            try:
                _write_synced(staged, data)
                st = staged.stat()
                record.update(ino=st.st_ino, mtime_ns=st.st_mtime_ns)
                self._write_sidecar(key, record)
                os.replace(staged, path)
            finally:
                staged.unlink(missing_ok=True)
        fsync_dir(path.parent)
        return _info(record)

    def _write_sidecar(self, key: str, record: dict[str, Any]) -> None:
        sidecar = self._sidecar(key)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_dir / f"{uuid.uuid4().hex}.json"
        _write_synced(tmp, json.dumps(record).encode("utf-8"))
        os.replace(tmp, sidecar)

    def _delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        self._sidecar(key).unlink(missing_ok=True)
        # Drop folders the delete emptied, as S3 has no empty "folders" either.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    # -- reads ------------------------------------------------------------------------------

    def _get(self, key: str, max_bytes: int) -> bytes:
        path = self._path(key)
        try:
            with path.open("rb") as f:
                refuse_over(key, os.fstat(f.fileno()).st_size, max_bytes)
                return f.read(max_bytes + 1)  # the port refuses a file that grew meanwhile
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"no blob {key!r}") from exc
        except OSError as exc:
            raise StoreError(f"cannot read blob {key!r}: {exc.strerror or exc}") from exc

    def _head(self, key: str) -> BlobInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._describe(key, path, st) if path.is_file() else None

    def _describe(self, key: str, path: Path, st: os.stat_result) -> BlobInfo:
        try:
            record = json.loads(self._sidecar(key).read_text("utf-8"))
            if (record["ino"], record["size"], record["mtime_ns"]) == (
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
            ):
                return _info(record)
        except (OSError, ValueError, KeyError):
            pass  # no sidecar (a file dropped in by hand) or a stale one
        md5 = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                md5.update(chunk)
        record = {
            "key": key,
            "ino": st.st_ino,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "etag": md5.hexdigest(),
            "content_type": mimetypes.guess_type(key)[0],
            "metadata": {},
        }
        with contextlib.suppress(OSError):  # a cache only: a read-only meta folder is fine
            self._write_sidecar(key, record)
        return _info(record)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, in key order (as S3 lists)."""
        start = self.root
        if "/" in prefix:
            start = self._path(prefix.rsplit("/", 1)[0])
        keys: list[str] = []
        for folder, dirs, files in os.walk(start):
            dirs.sort()
            rel = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and not name.startswith(_TMP_PREFIX):
                    keys.append(key)
        for key in sorted(keys):
            try:
                path = self._path(key)  # skips symlinks that point outside the root
                st = path.stat()
            except (FileNotFoundError, InvalidInput):
                continue  # deleted while listing, or not a key we would serve
            if path.is_file():
                yield self._describe(key, path, st)

    def _url(self, key: str) -> str:
        self._path(key)
        return f"{self.url_base}/files/{quote(key)}"


def _info(record: dict[str, Any]) -> BlobInfo:
    return BlobInfo(
        key=record["key"],
        size=record["size"],
        etag=record["etag"],
        content_type=record["content_type"],
        metadata=dict(record["metadata"]),
        last_modified=record["mtime_ns"] / 1e9,
    )


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
