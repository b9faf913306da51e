"""fp16 copies of a namespace's rows for the exact scan: half the bytes read per query.

``half-<nsid>-<gen>.f16`` holds rows ``0..covered-1`` of the generation's ``.f32`` file rounded
to IEEE fp16, after a 4096-byte header (magic, dimension, nsid, gen, ``covered``, CRC-32 of
these). The scan reads it in place of those rows and re-ranks in float64 from the float32 rows
(``embedded.scan``), so the answer does not depend on it; rows past ``covered`` (its *tail*) are
scanned in float32.

Derived data, never the source of truth, crash-safe the way a segment is:

* committed rows of a generation are never rewritten, so their halves, once written, stay right;
* growing appends the new halves, fsyncs them, and only then writes the header that covers them
  (fsynced): after a crash the header covers rows that are on disk, or is torn and fails its
  CRC, and the file is rebuilt; bytes past ``covered`` are never read and get overwritten;
* a file that is short of what its header claims, has another dimension, namespace or
  generation, or whose sampled rows are not the halves of the float32 rows (a file left by a
  dropped namespace whose id was reused) is ignored and rebuilt: written whole under a temporary
  name, fsynced, renamed over it, so a process still mapping the old one keeps reading it;
* writers (``serve`` processes on the same index) take an exclusive ``flock`` on the file while
  they write; two would write the same bytes anyway.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fashion_search.stores.durable import fsync_dir, sweep_temporaries

log = logging.getLogger(__name__)

HEADER_BYTES = 4096  # the rows start on a page boundary
_MAGIC = b"FSHALF01"
_FIELDS = struct.Struct("<8sIIQQ")  # magic, dimension, nsid, gen, covered
_CRC = struct.Struct("<I")
_CHUNK = 65536  # rows converted per write: bounded memory however large the namespace
_SAMPLE = 16  # rows compared with the float32 rows before a file is trusted


@dataclass(frozen=True)
class HalfParams:
    """The exact scan's fp16 rows (``Settings.embedded.half_rows`` turns them on)."""

    tail_rows: int = 10_000  # rows the file may lack (scanned in float32) before a job adds them
    background: bool = True  # write in a thread (the float32 scan serves meanwhile)


def _header(dimension: int, nsid: int, gen: int, covered: int) -> bytes:
    fields = _FIELDS.pack(_MAGIC, dimension, nsid, gen, covered)
    return fields + _CRC.pack(zlib.crc32(fields))


def halves(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float16]:
    """IEEE fp16, rounded to nearest even (what ``embedded.scan.scan_error`` assumes)."""
    return rows.astype(np.float16)


class HalfRows:
    """One namespace generation's fp16 file: checked, grown or rebuilt by one job at a time.

    Queries call ``prepare`` under the index's lock and pass ``rows`` to the scan; a job maps
    the grown file and swaps the new mapping in under the same lock.
    """

    def __init__(
        self,
        path: Path,
        dimension: int,
        nsid: int,
        gen: int,
        lock: threading.RLock,
        params: HalfParams,
    ) -> None:
        self.path = path
        self.rows: npt.NDArray[np.float16] | None = None  # the mapped halves, once ready
        self.error: str | None = None
        self._dimension = dimension
        self._nsid = nsid
        self._gen = gen
        self._lock = lock
        self._params = params
        self._busy = False

    def prepare(self, matrix: npt.NDArray[np.float32], n_rows: int) -> None:
        """Start a job if there is no mapping yet or the rows it lacks became too many."""
        covered = 0 if self.rows is None else len(self.rows)
        if self._busy or self.error is not None:
            return
        if self.rows is not None and n_rows - covered <= self._params.tail_rows:
            return
        self._busy = True
        if not self._params.background:
            self._job(matrix, n_rows)
            return
        threading.Thread(
            target=self._job, args=(matrix, n_rows), name="half-rows", daemon=True
        ).start()

    def _job(self, matrix: npt.NDArray[np.float32], n_rows: int) -> None:
        sweep_temporaries(self.path.parent, "half-*.f16.*.tmp")
        try:
            covered = self._grow(matrix, n_rows)
            rows: npt.NDArray[np.float16] = np.zeros((0, self._dimension), dtype=np.float16)
            if covered:  # numpy cannot map zero bytes
                rows = np.asarray(
                    np.memmap(
                        self.path,
                        dtype=np.float16,
                        mode="r",
                        offset=HEADER_BYTES,
                        shape=(covered, self._dimension),
                    )
                )
            with self._lock:
                self.rows = rows
        except OSError as exc:  # a cache: the float32 scan serves on
            log.error("cannot write the fp16 rows %s: %s; scanning float32", self.path, exc)
            self.error = str(exc)
        finally:
            with self._lock:
                self._busy = False

    def _grow(self, matrix: npt.NDArray[np.float32], n_rows: int) -> int:
        """Make the file cover at least ``n_rows`` rows (``matrix``'s); returns ``n_rows``."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            covered = self._valid_rows(fd, matrix)
            if covered is None:
                os.close(fd)
                fd = -1
                self._rebuild(matrix, n_rows)
                return n_rows
            if covered < n_rows:
                self._append(fd, matrix, covered, n_rows)
            return n_rows  # of a file another process grew further, our rows only
        finally:
            if fd >= 0:
                os.close(fd)

    def _valid_rows(self, fd: int, matrix: npt.NDArray[np.float32]) -> int | None:
        """Rows the file covers, 0 for a new empty file, None when it cannot be trusted."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        head = os.pread(fd, _FIELDS.size + _CRC.size, 0)
        problem = None
        covered = 0
        if len(head) < _FIELDS.size + _CRC.size:
            problem = "its header is cut short"
        else:
            fields, (crc,) = head[: _FIELDS.size], _CRC.unpack(head[_FIELDS.size :])
            magic, dimension, nsid, gen, covered = _FIELDS.unpack(fields)
            if magic != _MAGIC or crc != zlib.crc32(fields):
                problem = "its header is damaged"
            elif (dimension, nsid, gen) != (self._dimension, self._nsid, self._gen):
                problem = f"it belongs to {dimension}-d namespace {nsid} generation {gen}"
            elif size < HEADER_BYTES + covered * self._dimension * 2:
                problem = f"it holds fewer than the {covered} rows its header claims"
            elif not self._matches(fd, matrix, min(covered, len(matrix))):
                problem = "its rows are not these rows' halves"
        if problem is not None:
            log.warning("ignoring the fp16 rows %s (%s); rebuilding them", self.path, problem)
            return None
        return int(covered)

    def _matches(self, fd: int, matrix: npt.NDArray[np.float32], covered: int) -> bool:
        if covered == 0:
            return True
        width = self._dimension * 2
        for row in np.unique(np.linspace(0, covered - 1, num=min(_SAMPLE, covered)).astype(int)):
            stored = os.pread(fd, width, HEADER_BYTES + int(row) * width)
            if stored != halves(matrix[row]).tobytes():
                return False
        return True

    def _write_rows(self, fd: int, matrix: npt.NDArray[np.float32], lo: int, hi: int) -> None:
        width = self._dimension * 2
        for start in range(lo, hi, _CHUNK):
            data = halves(np.asarray(matrix[start : min(hi, start + _CHUNK)])).tobytes()
            if os.pwrite(fd, data, HEADER_BYTES + start * width) != len(data):
                raise OSError(f"short write to {self.path} (disk full?)")

    def _append(self, fd: int, matrix: npt.NDArray[np.float32], lo: int, hi: int) -> None:
        self._write_rows(fd, matrix, lo, hi)
        os.fsync(fd)  # the rows, before the header that covers them
        os.pwrite(fd, _header(self._dimension, self._nsid, self._gen, hi), 0)
        os.fsync(fd)
        if lo == 0:
            fsync_dir(self.path.parent)  # maybe a new file: its directory entry too

    def _rebuild(self, matrix: npt.NDArray[np.float32], n_rows: int) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                self._append(fd, matrix, 0, n_rows)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
