"""Hybrid (dense + lexical) text queries against dense-only ones, on one home, alternated.

    python benchmarks/hybrid.py --data-dir DATA [--rounds 7] [--http] [--json out.json]

Both sides run the same ``Searcher.by_text`` (text tower, index query, catalog join) on the same
queries; only ``alpha`` differs (1.0: dense only; the settings' default: hybrid). With ``--http``
the queries go to ``POST /get_image_by_text`` of a ``fashion-search serve`` started on loopback
over the same home (what a client sees); without it, to the search core in this process (the
hybrid part's own cost, with nothing around it to hide it). The sides alternate query by
query (A, B, A, B..., the pair's order flipped every round), so drift on a shared machine lands
on both; each round times every query once per side and the figure per side is the round's
median; the ratio is hybrid / dense of the per-round medians (min and median over rounds),
printed with os.getloadavg() beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

QUERIES = (
    "navy striped summer dress",
    "red dress",
    "leather jacket",
    "black sneakers",
    "yellow checked skirt",
    "men grey jeans",
    "puma",
    "women olive dotted handbag",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="an embedded home")
    parser.add_argument("--model", type=Path, default=Path("models/demo"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--http", action="store_true", help="through the API on loopback")
    args = parser.parse_args()
    if args.http:
        run = http_runner(args.data_dir, args.model, args.top_k)

    from fashion_search.model.embedder import OnnxClipEmbedder
    from fashion_search.runtime import open_runtime
    from fashion_search.settings import EmbeddedSettings, Settings

    settings = Settings(embedded=EmbeddedSettings(data_dir=args.data_dir))
    embedder = OnnxClipEmbedder.from_bundle(args.model, intra_op_threads=1)
    alpha = settings.search.alpha
    with open_runtime(settings, embedder=embedder) as runtime:
        searcher = runtime.searcher()
        searcher.warm()
        size = searcher.index_size()
        if not args.http:

            def run(q: str, a: float) -> None:
                searcher.by_text(q, top_k=args.top_k, alpha=a)

        sides = measure(run, alpha, args.rounds)
    ratios = [h / d for h, d in zip(sides["hybrid"], sides["dense"], strict=True)]
    load = os.getloadavg()
    out = {
        "index_size": size,
        "through": "http" if args.http else "in-process",
        "alpha": alpha,
        "rounds": args.rounds,
        "queries": len(QUERIES),
        "dense_ms": {"min": min(sides["dense"]), "median": statistics.median(sides["dense"])},
        "hybrid_ms": {"min": min(sides["hybrid"]), "median": statistics.median(sides["hybrid"])},
        "ratio": {"min": min(ratios), "median": statistics.median(ratios)},
        "loadavg": load,
    }
    print(
        f"{'HTTP' if args.http else 'in-process'}, {size} items, alpha {alpha}: dense "
        f"{out['dense_ms']['median']:.2f} ms, hybrid "
        f"{out['hybrid_ms']['median']:.2f} ms per query (median of {args.rounds} alternated "
        f"rounds); hybrid/dense ratio min {out['ratio']['min']:.3f} median "
        f"{out['ratio']['median']:.3f}; loadavg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


def measure(run: Callable[[str, float], None], alpha: float, rounds: int) -> dict[str, list[float]]:
    for q in QUERIES:  # first-use costs (calibration, FTS pages) out of the timings
        run(q, alpha)
        run(q, 1.0)
    sides: dict[str, list[float]] = {"dense": [], "hybrid": []}
    for r in range(rounds):
        pair = [("dense", 1.0), ("hybrid", alpha)]
        if r % 2:  # ABBA: neither side always runs second, on caches the other warmed
            pair.reverse()
        times: dict[str, list[float]] = {"dense": [], "hybrid": []}
        for q in QUERIES:
            for side, a in pair:
                start = time.perf_counter()
                run(q, a)
                times[side].append((time.perf_counter() - start) * 1000.0)
        for side, t in times.items():
            sides[side].append(statistics.median(t))
    return sides


def http_runner(data_dir: Path, model: Path, top_k: int) -> Callable[[str, float], None]:
    """A ``fashion-search serve`` over ``data_dir`` (stopped at exit) and a query function."""
    import atexit
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    env.update(
        FASHION_SEARCH_EMBEDDED__DATA_DIR=str(data_dir),
        FASHION_SEARCH_MODEL__BUNDLE=str(model),
        FASHION_SEARCH_API__AUTH_DISABLED="true",
        FASHION_SEARCH_API__PORT=str(port),
        FASHION_SEARCH_MODEL__INTRA_OP_THREADS="1",
    )
    cli = [sys.executable, "-m", "fashion_search.cli", "serve"]
    server = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(server.terminate)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + 120
    while True:
        try:
            if client.get("/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the API did not start")
        time.sleep(0.2)

    def run(q: str, a: float) -> None:
        body = {"text": q, "top_k": top_k, "alpha": a}
        client.post("/get_image_by_text", json=body).raise_for_status()

    return run


if __name__ == "__main__":
    main()
