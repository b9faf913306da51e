"""The exact scan's fp16 rows: same answers as float32, and their file's life (grown, damaged,
stale, compacted; temporaries of dead writers: test_ann.py).

The filter semantics with fp16 rows are the vector contract suite's (tests/contract, the
``embedded-fp16`` adapter); exactness on adversarial near-ties is tests/unit/stores/
test_scan.py's.
"""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fashion_search.stores.embedded import vector_index
from fashion_search.stores.embedded.half import HEADER_BYTES, halves
from fashion_search.stores.embedded.scan import exact_top
from fashion_search.stores.embedded.vector_index import EmbeddedVectorIndex, HalfParams
from fashion_search.types import VectorRecord

DIM = 32
NOW = HalfParams(background=False)  # written inside the query, not in a thread


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def records(x: np.ndarray, first: int = 0) -> list[VectorRecord]:
    return [
        VectorRecord(f"v{first + i}", row, {"colour": ["Red", "Blue"][(first + i) % 2]})
        for i, row in enumerate(x)
    ]


def covered(path: Path) -> int:
    """Rows the file's header covers."""
    return int(struct.unpack_from("<Q", path.read_bytes(), 24)[0])


def stored_halves(path: Path) -> np.ndarray:
    return np.frombuffer(path.read_bytes()[HEADER_BYTES:], dtype=np.float16).reshape(-1, DIM)


def halves_of_rows(path: Path, gen: int = 0) -> np.ndarray:
    """The halves of the float32 rows the index stored (unit rows, as upserted)."""
    return halves(np.fromfile(path / f"ns-0-{gen}.f32", dtype=np.float32).reshape(-1, DIM))


def answers(index: EmbeddedVectorIndex, queries: np.ndarray) -> list[list[tuple[str, float]]]:
    return [
        [(m.id, m.score) for m in index.query(q, top_k=10, filter=f)]
        for q in queries
        for f in (None, {"colour": "Red"})
    ]


def test_fp16_rows_give_the_float32_scans_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned: list[int] = []  # how many fp16 rows each exact scan of the ``half`` index was given

    def spy(*args: Any, half: np.ndarray | None = None, **kwargs: Any) -> Any:
        if half is not None:
            scanned.append(len(half))
        return exact_top(*args, half=half, **kwargs)

    monkeypatch.setattr(vector_index, "exact_top", spy)
    x = unit(3000)
    queries = unit(20, seed=7)
    plain = EmbeddedVectorIndex(tmp_path / "plain", dimension=DIM)
    half = EmbeddedVectorIndex(tmp_path / "half", dimension=DIM, half=NOW)
    for index in (plain, half):
        index.upsert(records(x))
        index.delete(["v5", "v6"])
    assert answers(half, queries) == answers(plain, queries)  # ids and scores, filtered too
    assert scanned == [3000] * 2 * len(queries)
    f16 = tmp_path / "half" / "half-0-0.f16"
    assert covered(f16) == 3000
    assert np.array_equal(stored_halves(f16), halves_of_rows(tmp_path / "half"))
    assert not list((tmp_path / "plain").glob("half-*"))
    plain.close()
    half.close()


def test_the_file_grows_once_its_tail_is_long(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    index = EmbeddedVectorIndex(
        path, dimension=DIM, half=HalfParams(tail_rows=50, background=False)
    )
    x = unit(400)
    index.upsert(records(x[:300]))
    index.query(x[0], top_k=1)
    f16 = path / "half-0-0.f16"
    assert covered(f16) == 300
    index.upsert(records(x[300:340], first=300))  # 40 rows: scanned in float32 meanwhile
    assert [m.id for m in index.query(x[330], top_k=1)] == ["v330"]
    assert covered(f16) == 300
    index.upsert(records(x[340:], first=340))  # 100 past the file: appended
    assert [m.id for m in index.query(x[399], top_k=1)] == ["v399"]
    assert covered(f16) == 400
    assert np.array_equal(stored_halves(f16), halves_of_rows(path))
    index.close()


def _damage(f16: Path, kind: str, x: np.ndarray) -> None:
    data = bytearray(f16.read_bytes())
    if kind == "truncated":
        f16.write_bytes(data[: HEADER_BYTES + 100 * DIM * 2])
    elif kind == "torn-header":
        data[8:16] = b"\xff" * 8  # the CRC no longer matches
        f16.write_bytes(data)
    elif kind == "other-generation":
        fields = struct.pack("<8sIIQQ", b"FSHALF01", DIM, 0, 7, 300)
        data[: len(fields) + 4] = fields + struct.pack("<I", zlib.crc32(fields))
        f16.write_bytes(data)
    elif kind == "stale-rows":  # a valid file of other vectors: a reused namespace id's
        data[HEADER_BYTES:] = halves(unit(300, seed=99)).tobytes()
        f16.write_bytes(data)
    else:  # "empty"
        f16.write_bytes(b"")


@pytest.mark.parametrize(
    "kind", ["truncated", "torn-header", "other-generation", "stale-rows", "empty"]
)
def test_a_damaged_or_stale_file_is_rebuilt(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "ix"
    x = unit(300)
    index = EmbeddedVectorIndex(path, dimension=DIM, half=NOW)
    index.upsert(records(x))
    want = answers(index, x[:5])
    index.close()
    f16 = path / "half-0-0.f16"
    _damage(f16, kind, x)
    reopened = EmbeddedVectorIndex(path, dimension=DIM, half=NOW)
    assert answers(reopened, x[:5]) == want
    assert covered(f16) == 300
    assert np.array_equal(stored_halves(f16), halves_of_rows(path))
    reopened.close()


def test_rows_written_past_the_header_by_a_crashed_writer_are_overwritten(tmp_path: Path) -> None:
    # A writer killed after appending rows but before the header that covers them.
    path = tmp_path / "ix"
    x = unit(300)
    index = EmbeddedVectorIndex(path, dimension=DIM, half=HalfParams(tail_rows=0, background=False))
    index.upsert(records(x[:200]))
    index.query(x[0], top_k=1)
    index.close()
    f16 = path / "half-0-0.f16"
    with open(f16, "ab") as out:
        out.write(b"\x7b" * (50 * DIM * 2))  # junk where rows 200..249 will go
    assert covered(f16) == 200
    reopened = EmbeddedVectorIndex(
        path, dimension=DIM, half=HalfParams(tail_rows=0, background=False)
    )
    reopened.upsert(records(x[200:], first=200))
    assert [m.id for m in reopened.query(x[220], top_k=1)] == ["v220"]
    assert covered(f16) == 300
    assert np.array_equal(stored_halves(f16), halves_of_rows(path))
    reopened.close()


def test_compaction_and_namespace_reuse_remove_old_files(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    x = unit(200)
    index = EmbeddedVectorIndex(path, dimension=DIM, half=NOW)
    index.upsert(records(x))
    index.query(x[0], top_k=1)
    index.delete([f"v{i}" for i in range(0, 200, 2)])
    assert index.compact() == 100
    assert not (path / "half-0-0.f16").exists()  # its rows were the old generation's
    assert [m.id for m in index.query(x[7], top_k=1)] == ["v7"]
    assert covered(path / "half-0-1.f16") == 100
    # A file left under the id a new namespace gets (a drop that crashed before its unlink).
    (path / "half-1-0.f16").write_bytes(b"left over")
    index.upsert(records(x[:3]), namespace="other")
    assert not (path / "half-1-0.f16").exists()
    assert [m.id for m in index.query(x[1], top_k=1, namespace="other")] == ["v1"]
    index.close()


def test_a_background_write_serves_float32_until_ready(tmp_path: Path) -> None:
    x = unit(2000)
    index = EmbeddedVectorIndex(tmp_path / "ix", dimension=DIM, half=HalfParams())
    index.upsert(records(x))
    assert [m.id for m in index.query(x[1500], top_k=1)] == ["v1500"]  # starts the job
    for thread in threading.enumerate():
        if thread.name == "half-rows":
            thread.join(timeout=60)  # a bound on the wait, not a timing assertion
    assert covered(tmp_path / "ix" / "half-0-0.f16") == 2000
    assert [m.id for m in index.query(x[1500], top_k=1)] == ["v1500"]
    index.close()
