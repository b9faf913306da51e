"""Embedded vector index: exact top-10 latency, upsert throughput, open time, memory.

For each size (default 10k, 100k, 1M vectors of 512 dimensions) it builds an
``EmbeddedVectorIndex`` in a temporary directory and measures, in the same run and on the same
data, the naive baseline (numpy float32 ``X @ q`` + ``argpartition`` over an in-memory matrix)
next to the index, unfiltered and with a filter matching about 10% (``articleType`` is one of
ten values). Open time and memory are measured in a fresh process (the index's files are in the
page cache, as after a service restart). Prints a table; ``--json PATH`` writes the figures.

    python benchmarks/index.py --sizes 10000 100000 1000000 --json bench-index.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fashion_search.stores.vectors_embedded import EmbeddedVectorIndex
from fashion_search.types import VectorRecord

DIM = 512
TOP_K = 10
TYPES = [f"type-{i}" for i in range(10)]
FILTER = {"articleType": "type-3"}


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def baseline(x: np.ndarray, q: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    scores = x @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    best = np.argpartition(-scores, TOP_K)[:TOP_K]
    return best[np.argsort(-scores[best])]


def interleaved(fns: dict[str, Any], queries: np.ndarray) -> dict[str, dict[str, float]]:
    """Latency of each function over the same queries, taking turns query by query so that
    all of them meet the same machine load (a shared 2-core box is anything but quiet)."""
    for fn in fns.values():
        fn(queries[0])  # warm: page cache, filter columns, BLAS threads
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for q in queries:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(q)
            samples[name].append(time.perf_counter() - start)
    return {name: percentiles(values) for name, values in samples.items()}


def probe(path: Path) -> None:
    """Run in a fresh process: open time, first (column-building) filtered query, memory."""
    before = rss_mib()
    start = time.perf_counter()
    index = EmbeddedVectorIndex(path, dimension=DIM)
    count = index.count()  # loads the namespace: live rows and the mapped matrix
    opened = time.perf_counter() - start
    q = unit_rows(np.random.default_rng(1), 1)[0]
    start = time.perf_counter()
    index.query(q, top_k=TOP_K, filter=FILTER)
    first_filtered = time.perf_counter() - start
    for _ in range(20):
        index.query(q, top_k=TOP_K)
        index.query(q, top_k=TOP_K, filter=FILTER)
    figures = {
        "count": count,
        "open_s": opened,
        "first_filtered_query_s": first_filtered,
        "rss_after_queries_mib": rss_mib() - before,
    }
    print(json.dumps(figures))


def run_size(n: int, *, queries: int, root: Path) -> dict[str, Any]:
    rng = np.random.default_rng(n)
    x = unit_rows(rng, n)
    types = rng.integers(0, len(TYPES), size=n)
    path = root / f"index-{n}"
    index = EmbeddedVectorIndex(path, dimension=DIM)
    batch = 5000
    start = time.perf_counter()
    for lo in range(0, n, batch):
        index.upsert(
            [
                VectorRecord(
                    f"img-{i}",
                    x[i],
                    {"articleType": TYPES[types[i]], "year": 2010 + i % 8, "key": f"{i}.jpg"},
                )
                for i in range(lo, min(n, lo + batch))
            ]
        )
    upsert_s = time.perf_counter() - start
    qs = unit_rows(np.random.default_rng(7), queries)
    mask = types == TYPES.index("type-3")
    # Same answers first: the index is exact, so it must agree with the baseline.
    got = [m.id for m in index.query(qs[0], top_k=TOP_K)]
    assert got == [f"img-{i}" for i in baseline(x, qs[0], None)], "index disagrees with numpy"
    figures: dict[str, Any] = {
        "n": n,
        "dim": DIM,
        "filter_selectivity": float(mask.mean()),
        "upsert_vectors_per_s": n / upsert_s,
        **interleaved(
            {
                "baseline_unfiltered": lambda q: baseline(x, q, None),
                "index_unfiltered": lambda q: index.query(q, top_k=TOP_K),
                "index_filtered": lambda q: index.query(q, top_k=TOP_K, filter=FILTER),
                "baseline_filtered": lambda q: baseline(x, q, mask),
            },
            qs,
        ),
        "disk_mib": sum(f.stat().st_size for f in path.iterdir()) / 2**20,
    }
    index.close()
    out = subprocess.run(
        [sys.executable, __file__, "--probe", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures.update(json.loads(out.stdout))
    shutil.rmtree(path)
    return figures


def show(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'n':>9} {'base p50/p99 ms':>16} {'index p50/p99':>14} {'filt p50/p99':>14} "
        f"{'base filt':>12} {'upsert/s':>9} {'open s':>7} {'1st filt s':>10} {'RSS MiB':>8}"
    )
    print(head)
    for r in rows:
        pair = {
            key: f"{v['p50_ms']:.2f}/{v['p99_ms']:.2f}"
            for key, v in r.items()
            if "_" in key and isinstance(v, dict)
        }
        print(
            f"{r['n']:>9} {pair['baseline_unfiltered']:>16} {pair['index_unfiltered']:>14} "
            f"{pair['index_filtered']:>14} {pair['baseline_filtered']:>12} "
            f"{r['upsert_vectors_per_s']:>9.0f} {r['open_s']:>7.3f} "
            f"{r['first_filtered_query_s']:>10.3f} {r['rss_after_queries_mib']:>8.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: tmp)")
    parser.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    root = Path(tempfile.mkdtemp(prefix="bench-index-", dir=args.dir))
    try:
        rows = []
        for n in args.sizes:
            rows.append(run_size(n, queries=args.queries, root=root))
            show(rows[-1:])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    show(rows)
    if args.json:
        meta = {
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "numpy": np.__version__,
            "top_k": TOP_K,
        }
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
