"""Embedded vector index against its peers, side by side in one run: top-10 latency and recall.

For each size (default 100k vectors of 512 dimensions) it builds an ``EmbeddedVectorIndex`` in a
temporary directory and times, on the same data and queries, with one BLAS/OpenMP thread as
``serve`` runs:

* ``exact``: the project's exact scan (``index.query``, ANN off), ids and metadata included;
* ``exact16``: the same over fp16 rows (``HalfParams``: half the bytes, re-ranked exactly);
* ``ann``: the project's HNSW graph (``index.query`` over the threshold; ``--ef`` values);
* ``numpy``: ``X @ q`` + ``argpartition`` over an in-memory matrix (the naive baseline);
* ``faiss``: faiss-cpu ``IndexFlatIP.search`` (a filter: ``IDSelectorBitmap``);

unfiltered and with a filter keeping 10% (``articleType`` is one of ten values). The sides take
turns: each round runs every side over all queries, the order rotating from round to round
(ABCD, BCDA, ...), so all meet the same machine load; each side's p50 and p99 are reported as
the min and median over rounds, ratios from the medians, with the load average of each round.
recall@10 is against faiss's exact answer (computed untimed). ``--sides`` times a subset
(an efSearch sweep: ``--sides ann``). Open time, the first filtered query and memory are
measured in a fresh process. The graph's build time is printed once per size (a 1M build takes
many minutes on a 2-core box: keep repeated runs at 100k).

Data: unit vectors around 1,000 random centres (``--data clustered``, the default), because
graph indexes are tuned for data with structure, like image embeddings; ``--data random``
(isotropic noise, no neighbours to speak of) is the worst case, where any graph index needs a
beam near a full scan for high recall.

    python benchmarks/index.py --sizes 100000 --json .bench/index.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from fashion_search.stores.embedded.vector_index import (
    AnnParams,
    EmbeddedVectorIndex,
    HalfParams,
)
from fashion_search.types import VectorRecord
from threadpoolctl import threadpool_limits

DIM = 512
TOP_K = 10
TYPES = [f"type-{i}" for i in range(10)]
FILTER = {"articleType": "type-3"}
SIDES = ("exact", "exact16", "numpy", "faiss", "ann")
Side = Callable[[np.ndarray], list[int]]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_data(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "clustered":
        centres = rng.standard_normal((1000, DIM), dtype=np.float32)
        x = centres[rng.integers(0, len(centres), n)]
        x += 0.7 * rng.standard_normal((n, DIM), dtype=np.float32)
    else:
        x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_queries(x: np.ndarray, count: int) -> np.ndarray:
    """Near stored vectors (a query finds its neighbourhood), not copies of them."""
    rng = np.random.default_rng(7)
    q = x[rng.integers(0, len(x), count)] + 0.03 * rng.standard_normal((count, DIM))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32)


def numpy_top(x: np.ndarray, q: np.ndarray, mask: np.ndarray | None) -> list[int]:
    scores = x @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    best = np.argpartition(-scores, TOP_K)[:TOP_K]
    return [int(i) for i in best[np.argsort(-scores[best])]]


def faiss_side(flat: Any, mask: np.ndarray | None) -> Side:
    params = None
    bits = np.packbits(mask if mask is not None else np.zeros(0, bool), bitorder="little")
    if mask is not None:
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))

    def side(q: np.ndarray, bits: np.ndarray = bits) -> list[int]:  # the selector reads ``bits``
        _, ids = flat.search(q.reshape(1, -1), TOP_K, params=params)
        return [int(i) for i in ids[0]]

    return side


def index_side(index: EmbeddedVectorIndex, filt: dict[str, Any] | None) -> Side:
    def side(q: np.ndarray) -> list[int]:
        return [int(m.id[4:]) for m in index.query(q, top_k=TOP_K, filter=filt)]

    return side


def ann_side(index: EmbeddedVectorIndex, ef: int, filt: dict[str, Any] | None) -> Side:
    def side(q: np.ndarray) -> list[int]:
        index.ann = dataclasses.replace(index.ann, ef_search=ef)
        return [int(m.id[4:]) for m in index.query(q, top_k=TOP_K, filter=filt)]

    return side


def stats(values: list[float]) -> dict[str, float]:
    return {"min": float(np.min(values)), "median": float(np.median(values))}


def alternate(
    sides: dict[str, Side], queries: np.ndarray, rounds: int
) -> tuple[dict[str, dict[str, Any]], dict[str, list[list[int]]], list[float]]:
    """Every side over every query, once a round, the order rotating; per-round p50/p99."""
    names = list(sides)
    per_round: dict[str, dict[str, list[float]]] = {s: {"p50": [], "p99": []} for s in names}
    answers: dict[str, list[list[int]]] = {}
    loads = []
    for name in names:
        sides[name](queries[0])  # warm: page cache, lazily built wrappers
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples = []
            got = []
            for q in queries:
                start = time.perf_counter()
                ids = sides[name](q)
                samples.append(time.perf_counter() - start)
                got.append(ids)
            answers[name] = got
            ms = np.asarray(samples) * 1000
            per_round[name]["p50"].append(float(np.percentile(ms, 50)))
            per_round[name]["p99"].append(float(np.percentile(ms, 99)))
        loads.append(os.getloadavg()[0])
    out = {
        name: {"p50_ms": stats(v["p50"]), "p99_ms": stats(v["p99"])}
        for name, v in per_round.items()
    }
    return out, answers, loads


def recall(got: list[list[int]], truth: list[list[int]]) -> float:
    hits = sum(len(set(g) & set(t)) for g, t in zip(got, truth, strict=True))
    return hits / sum(len(t) for t in truth)


def probe(path: Path) -> None:
    """Run in a fresh process: open time (filter columns included), first filtered query, RSS."""
    before = rss_mib()
    start = time.perf_counter()
    index = EmbeddedVectorIndex(
        path, dimension=DIM, ann=AnnParams(min_vectors=None), filter_fields=["articleType"]
    )
    count = index.count()  # loads the namespace: live rows, mapped matrix, filter columns
    opened = time.perf_counter() - start
    q = make_data("random", 1, 1)[0]
    start = time.perf_counter()
    index.query(q, top_k=TOP_K, filter=FILTER)
    first_filtered = time.perf_counter() - start
    for _ in range(5):
        index.query(q, top_k=TOP_K)
        index.query(q, top_k=TOP_K, filter=FILTER)
    figures = {
        "count": count,
        "open_s": opened,
        "first_filtered_query_s": first_filtered,
        "rss_exact_after_queries_mib": rss_mib() - before,
    }
    print(json.dumps(figures))


def open_graph(
    n: int, path: Path, args: argparse.Namespace, reuse: bool
) -> tuple[EmbeddedVectorIndex, dict[str, Any]]:
    """The index with its graph over the threshold: built (inline) and saved, or loaded."""
    ann = EmbeddedVectorIndex(
        path, dimension=DIM, ann=AnnParams(min_vectors=1, ef_search=args.ef[0], background=False)
    )
    load_before_build = os.getloadavg()[0]
    start = time.perf_counter()
    ann.count()
    ann.engine()  # builds the graph (inline) and saves it
    build_s = time.perf_counter() - start
    graph_mib = sum(p.stat().st_size for p in path.glob("ann-*")) / 2**20
    print(
        f"  {n:,}: graph {'loaded' if reuse else 'built'} in {build_s:.1f} s "
        f"(load {load_before_build:.1f}), "
        f"{graph_mib:.0f} MiB on disk",
        flush=True,
    )
    return ann, {
        "reused_index": reuse,
        "ann_build_s": None if reuse else build_s,
        "ann_load_s": build_s if reuse else None,
        "ann_build_load_average": load_before_build,
        "ann_graph_mib": graph_mib,
        "disk_mib": sum(f.stat().st_size for f in path.iterdir()) / 2**20,
    }


def run_size(n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    x = make_data(args.data, n, n)
    types = np.random.default_rng(n + 1).integers(0, len(TYPES), size=n)
    mask = types == TYPES.index("type-3")
    reuse = args.index_dir is not None and (args.index_dir / "index.sqlite").exists()
    path = args.index_dir or root / f"index-{n}"
    exact = EmbeddedVectorIndex(path, dimension=DIM, ann=AnnParams(min_vectors=None))
    start = time.perf_counter()
    for lo in range(0, n if not reuse else 0, 5000):
        exact.upsert(
            [
                VectorRecord(f"img-{i}", x[i], {"articleType": TYPES[types[i]], "key": f"{i}.jpg"})
                for i in range(lo, min(n, lo + 5000))
            ]
        )
    upsert_s = time.perf_counter() - start
    if args.build_only:
        del x
        ann, graph = open_graph(n, path, args, reuse)
        ann.close()
        exact.close()
        return {"n": n, "dim": DIM, "data": args.data, **graph}
    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    del x  # numpy's side reads faiss's copy: one 2 GB matrix at 1M, not two
    matrix = faiss.rev_swig_ptr(flat.get_xb(), n * DIM).reshape(n, DIM)
    queries = make_queries(matrix, args.queries)

    ann, graph = open_graph(n, path, args, reuse) if "ann" in args.sides else (None, {})
    half = EmbeddedVectorIndex(
        path, dimension=DIM, ann=AnnParams(min_vectors=None), half=HalfParams(background=False)
    )
    start = time.perf_counter()
    half.query(queries[0], top_k=TOP_K)  # maps the fp16 rows, writing them if they are missing
    half_s = time.perf_counter() - start
    print(f"  fp16 rows ready in {half_s:.1f} s (written if missing)", flush=True)
    figures: dict[str, Any] = {
        "n": n,
        "dim": DIM,
        "data": args.data,
        "filter_selectivity": float(mask.mean()),
        "upsert_vectors_per_s": None if reuse else n / upsert_s,
        "fp16_rows_ready_s": half_s,
        **graph,
    }
    for label, filt, m in (("unfiltered", None, None), ("filtered", FILTER, mask)):
        sides: dict[str, Side] = {
            "exact": index_side(exact, filt),
            "exact16": index_side(half, filt),
            "numpy": lambda q, m=m: numpy_top(matrix, q, m),
            "faiss": faiss_side(flat, m),
        }
        sides = {name: side for name, side in sides.items() if name in args.sides}
        if ann is not None:
            sides.update({f"ann_ef{ef}": ann_side(ann, ef, filt) for ef in args.ef})
        truth = [faiss_side(flat, m)(q) for q in queries]
        timing, answers, loads = alternate(sides, queries, args.rounds)
        for name in sides:
            timing[name]["recall_at_10"] = recall(answers[name], truth)
        med = {name: t["p50_ms"]["median"] for name, t in timing.items()}
        pairs = [("exact", "numpy"), ("exact", "faiss"), ("exact16", "exact"), ("exact16", "faiss")]
        pairs += [(f"ann_ef{ef}", "faiss") for ef in args.ef]
        ratios = {f"{a}/{b}": med[a] / med[b] for a, b in pairs if a in med and b in med}
        figures[label] = {"sides": timing, "ratios_p50": ratios, "load_average_per_round": loads}
        show(n, label, figures[label])
    exact.close()
    half.close()
    if ann is not None:
        ann.close()
    flat.reset()  # frees the 2 GB (at 1M) before the probe process maps the index
    if not args.skip_probe:
        out = subprocess.run(
            [sys.executable, __file__, "--probe", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures.update(json.loads(out.stdout))
        print(
            f"  open {figures['open_s']:.3f} s (filter column included), first filtered query "
            f"{figures['first_filtered_query_s'] * 1000:.1f} ms"
            + ("" if reuse else f", upsert {figures['upsert_vectors_per_s']:,.0f} vectors/s"),
            flush=True,
        )
    if args.index_dir is None:
        shutil.rmtree(path)
    return figures


def show(n: int, label: str, block: dict[str, Any]) -> None:
    loads = block["load_average_per_round"]
    print(
        f"\n{n:,} x {DIM}, top-{TOP_K}, {label}; load average per round "
        + " ".join(f"{v:.1f}" for v in loads)
    )
    print(f"  {'side':<12} {'p50 min/med ms':>16} {'p99 min/med ms':>16} {'recall@10':>10}")
    for name, t in block["sides"].items():
        p50, p99 = t["p50_ms"], t["p99_ms"]
        print(
            f"  {name:<12} {p50['min']:>7.2f}/{p50['median']:<8.2f} "
            f"{p99['min']:>7.2f}/{p99['median']:<8.2f} {t['recall_at_10']:>10.3f}"
        )
    print(
        "  p50 ratios (medians): "
        + ", ".join(f"{k} {v:.2f}" for k, v in block["ratios_p50"].items()),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ef", type=int, nargs="+", default=[AnnParams().ef_search])
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument(
        "--skip-probe", action="store_true", help="no fresh-process open / first-query probe"
    )
    parser.add_argument("--data", choices=["clustered", "random"], default="clustered")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: tmp)")
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=None,
        help="keep the index (and its graph) here; reuse it when present (one size only): "
        "an efSearch sweep at 1M without a second build",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build the index and its graph into --index-dir and stop (the long part of a 1M "
        "run, kept apart from the timed part)",
    )
    parser.add_argument("--probe", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # As served: one BLAS thread (runtime.limit_blas_threads), one faiss/OpenMP thread.
    threadpool_limits(limits=1)
    faiss.omp_set_num_threads(1)
    if args.probe:
        probe(args.probe)
        return
    if args.build_only and (args.index_dir is None or len(args.sizes) != 1):
        parser.error("--build-only needs --index-dir and one size")
    print(
        f"load average at start {os.getloadavg()}, {os.cpu_count()} CPUs, numpy "
        f"{np.__version__}, faiss {faiss.__version__}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="bench-index-", dir=args.dir))
    try:
        rows = [run_size(n, args, root) for n in args.sizes]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        meta = {
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "numpy": np.__version__,
            "faiss": faiss.__version__,
            "top_k": TOP_K,
            "rounds": args.rounds,
            "queries": args.queries,
            "command": " ".join(sys.argv),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
