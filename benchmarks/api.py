"""Search API latency against ``fashion-search serve`` on loopback, next to the bare towers.

Setup: a ViT-B/32-architecture bundle (random weights, real shapes: 224 px, 77 tokens, 512-d),
an embedded home with 44k random unit vectors and their catalog items. Then, in the same run:

* bare text tower (``embed_texts`` of one query) and decode + image tower (``embed_images`` of one
  JPEG upload) in this process, while the server is idle;
* ``POST /get_image_by_text`` and ``POST /get_similar_images`` (multipart JPEG) through HTTP at
  concurrency 1 and 4 (p50/p99 of each request's latency);
* the Lambda entry's cold start in a fresh process: import of ``functions/api/app.py`` (which
  loads model and stores) + first query through the Mangum handler; and the lazy alternative
  (import without loading, model loaded by the first request).

Goals (issue #5): text p50 <= 1.3 x bare text tower + 5 ms; image p50 <= 1.3 x (decode + tower).

    python benchmarks/api.py --json bench-api.json [--n 60] [--vectors 44000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key"
TEXTS = ["red summer dress", "navy blue jeans for men", "white sneakers", "striped shirt",
         "black leather handbag", "green kurta", "sports watch", "floral skirt"]  # fmt: skip


def vit_b32_bundle() -> Path:
    """The model helper's cached ViT-B/32-architecture bundle (benchmarks/embed.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from embed import vit_b32_bundle as cached_bundle  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    return Path(cached_bundle())


def photo_jpeg(seed: int, size: tuple[int, int] = (600, 800)) -> bytes:
    """A photo-sized JPEG with structure (gradients + noise), ~100 KB like a product shot."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], axis=-1)
    img = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def build_home(data_dir: Path, *, n: int, dim: int) -> None:
    from fashion_search.stores import catalog_sqlite
    from fashion_search.stores.catalog_sqlite import SqliteCatalog
    from fashion_search.stores.vectors_embedded import EmbeddedVectorIndex
    from fashion_search.types import CatalogItem, ItemStatus, VectorRecord

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    colours = ["Red", "Blue", "Black", "White", "Green", "Navy Blue", "Grey", "Pink"]
    (data_dir / "images").mkdir(parents=True, exist_ok=True)
    index = EmbeddedVectorIndex(data_dir / "index", dimension=dim)
    catalog = SqliteCatalog(data_dir / "catalog.sqlite")
    items = []
    for start in range(0, n, 1000):
        records = []
        for i in range(start, min(start + 1000, n)):
            tags = {"gender": ("Men", "Women")[i % 2], "baseColour": colours[i % len(colours)]}
            key = f"{i}.jpg"
            records.append(VectorRecord(str(i), vectors[i], {"key": key, **tags}))
            items.append(CatalogItem(image_id=str(i), key=key, status=ItemStatus.INDEXED,
                                     tags=tags, display_name=f"item {i}"))  # fmt: skip
        index.upsert(records)
    # One transaction for all rows (the public put() commits, and fsyncs, per item).
    catalog._write(lambda conn: [catalog_sqlite._store(conn, item) for item in items])
    catalog.close()
    index.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "n": len(samples)}  # fmt: skip


def bare_towers(bundle: Path, jpeg: bytes, n: int) -> dict[str, Any]:
    from fashion_search.model.embedder import OnnxClipEmbedder

    emb = OnnxClipEmbedder.from_bundle(bundle)
    emb.load()
    emb.embed_texts(["warm"])
    emb.embed_images([jpeg])
    # One tower at a time, like the HTTP phases: alternating them would evict each other's
    # weights from the CPU caches and make the bare figures look slower than they are.
    text, image = [], []
    for i in range(n):
        t0 = time.perf_counter()
        emb.embed_texts([TEXTS[i % len(TEXTS)]])
        text.append(time.perf_counter() - t0)
    for _ in range(n):
        t0 = time.perf_counter()
        emb.embed_images([jpeg])
        image.append(time.perf_counter() - t0)
    return {"text_tower": percentiles(text), "decode_plus_image_tower": percentiles(image)}


def run_http(base: str, jpeg: bytes, *, n: int, concurrency: int) -> dict[str, Any]:
    def text_call(client: httpx.Client, i: int) -> float:
        t0 = time.perf_counter()
        r = client.post(f"{base}/get_image_by_text", json={"text": TEXTS[i % len(TEXTS)]})
        r.raise_for_status()
        return time.perf_counter() - t0

    def image_call(client: httpx.Client, i: int) -> float:
        t0 = time.perf_counter()
        r = client.post(f"{base}/get_similar_images", files={"file": ("q.jpg", jpeg, "image/jpeg")})
        r.raise_for_status()
        return time.perf_counter() - t0

    out: dict[str, Any] = {}
    for name, call in (("text", text_call), ("image", image_call)):
        clients = [httpx.Client(headers={"X-API-Key": KEY}, timeout=60) for _ in range(concurrency)]
        try:
            for c in clients:
                call(c, 0)  # warm each connection
            with ThreadPoolExecutor(concurrency) as pool:
                futures = [pool.submit(call, clients[i % concurrency], i) for i in range(n)]
                samples = [f.result() for f in futures]
        finally:
            for c in clients:
                c.close()
        out[name] = percentiles(samples)
    return out


COLD = r"""
import importlib.util, json, sys, time
t0 = time.perf_counter()
mode = sys.argv[1]
if mode == "eager":
    spec = importlib.util.spec_from_file_location("api_entry", sys.argv[2])
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    handler = mod.handler
else:
    from mangum import Mangum
    from fashion_search.api import create_app
    from fashion_search.settings import Settings
    handler = Mangum(create_app(Settings()), lifespan="off")
t1 = time.perf_counter()
event = json.load(open(sys.argv[3]))
event["headers"]["x-api-key"] = sys.argv[4]
resp = handler(event, None)
t2 = time.perf_counter()
assert resp["statusCode"] == 200, resp
print(json.dumps({"import_s": t1 - t0, "first_query_s": t2 - t1, "total_s": t2 - t0}))
"""


def cold_start(env: dict[str, str], mode: str) -> dict[str, float]:
    event = REPO / "events" / "api_v2_text.json"
    cmd = [sys.executable, "-c", COLD, mode, str(REPO / "functions/api/app.py"), str(event), KEY]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return {k: round(v, 3) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vectors", type=int, default=44_000)
    ap.add_argument("--n", type=int, default=60, help="requests per measurement")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    bundle = vit_b32_bundle()
    jpeg = photo_jpeg(1)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        build_home(data, n=args.vectors, dim=512)
        print(f"home: {args.vectors} vectors in {time.perf_counter() - t0:.1f} s; bundle {bundle}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(
            os.environ,
            FASHION_SEARCH_EMBEDDED__DATA_DIR=str(data),
            FASHION_SEARCH_MODEL__BUNDLE=str(bundle),
            FASHION_SEARCH_API__API_KEYS=json.dumps([KEY]),
            FASHION_SEARCH_LOG_LEVEL="WARNING",
        )
        results: dict[str, Any] = {"vectors": args.vectors, "cpus": os.cpu_count(),
                                   "bundle": "ViT-B/32 architecture, random weights",
                                   "load_avg_1m_start": round(os.getloadavg()[0], 2)}  # fmt: skip
        results["bare"] = bare_towers(bundle, jpeg, args.n)
        server = subprocess.Popen(
            [sys.executable, "-m", "fashion_search.cli", "serve", "--port", str(port)],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    httpx.get(f"{base}/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            for c in (1, 4):
                results[f"http_c{c}"] = run_http(base, jpeg, n=args.n, concurrency=c)
        finally:
            server.terminate()
            server.wait(timeout=30)
        results["cold_start_eager"] = cold_start(env, "eager")
        results["cold_start_lazy"] = cold_start(env, "lazy")
        results["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def report(r: dict[str, Any]) -> None:
    bare_t = r["bare"]["text_tower"]["p50_ms"]
    bare_i = r["bare"]["decode_plus_image_tower"]["p50_ms"]
    print(f"\n{r['vectors']} vectors, {r['cpus']} CPUs, {r['bundle']}")
    load = f"{r['load_avg_1m_start']} -> {r['load_avg_1m_end']}"
    print(f"machine load average (1 min) during the run: {load} (shared machine: noisy)")
    p99 = r["bare"]["text_tower"]["p99_ms"]
    print(f"bare text tower          p50 {bare_t:8.1f} ms  p99 {p99:8.1f} ms")
    p99 = r["bare"]["decode_plus_image_tower"]["p99_ms"]
    print(f"bare decode+image tower  p50 {bare_i:8.1f} ms  p99 {p99:8.1f} ms")
    for c in (1, 4):
        for kind in ("text", "image"):
            m = r[f"http_c{c}"][kind]
            line = f"p50 {m['p50_ms']:8.1f} ms  p99 {m['p99_ms']:8.1f} ms"
            print(f"HTTP {kind:5s} concurrency {c}  {line}")
    goal_t, goal_i = 1.3 * bare_t + 5, 1.3 * bare_i
    got_t, got_i = r["http_c1"]["text"]["p50_ms"], r["http_c1"]["image"]["p50_ms"]
    r["goals"] = {"text_p50_goal_ms": round(goal_t, 2), "text_met": got_t <= goal_t,
                  "image_p50_goal_ms": round(goal_i, 2), "image_met": got_i <= goal_i}  # fmt: skip
    print(
        f"goal text p50 <= {goal_t:.1f} ms: {'met' if got_t <= goal_t else 'MISSED'} ({got_t:.1f})"
    )
    print(
        f"goal image p50 <= {goal_i:.1f} ms: {'met' if got_i <= goal_i else 'MISSED'} ({got_i:.1f})"
    )
    for mode in ("eager", "lazy"):
        m = r[f"cold_start_{mode}"]
        print(f"Lambda cold start ({mode}): import {m['import_s']:.2f} s + first query "
              f"{m['first_query_s']:.2f} s = {m['total_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
