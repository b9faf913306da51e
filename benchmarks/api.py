"""Search API under load: ``fashion-search serve`` on loopback next to the in-process call, and
next to another commit's server (``--baseline main``), the sides taking turns.

Setup: a ViT-B/32-architecture bundle (random weights, real shapes: 224 px, 512-d; its text graph
has a dynamic sequence axis), an embedded home with 44k random unit vectors and their catalog
items. Then, in one run:

* the in-process call (``Searcher.by_text`` / ``by_image`` in this process) vs the same query
  through HTTP at concurrency 1: what HTTP, JSON and uvicorn add;
* ``POST /get_image_by_text`` and ``POST /get_similar_images`` (multipart JPEG) at each
  concurrency (closed loop: each of C clients sends its next request when its last one returns),
  this tree's server vs the baseline's, alternating round by round (AB, BA, ...): throughput,
  p50 and p99 of each request's latency;
* with each round, the CPU time it cost: the server process's (``/proc/PID/stat``) and this
  process's, where the clients run (``getrusage``), per request: on a 2-core machine the load
  generator shares the cores with the server, and what a request costs in core-ms bounds the
  throughput any scheduling can reach;
* optionally (``--cold-start``) the Lambda entry's cold start in a fresh process, eager (model
  loaded at import) vs lazy (loaded by the first request), alternating.

Issue 17's goals, at concurrency 16 vs 1 for text queries: throughput at 16 >= 2x the baseline's,
p99 at 16 <= 4x this tree's p50 at 1, p50 at 1 no worse than the baseline's. With C clients in a
closed loop the mean latency is C / throughput (Little's law), and p99 >= the mean, so the p99 goal
needs throughput at 16 >= 16 / (4 x p50 at 1): the report prints that rate, the core-ms per
request it leaves on this machine's cores, and the core-ms a request cost at 16.

    python benchmarks/api.py --baseline main --json bench-api.json [--rounds 3]
    python benchmarks/api.py --bundle TINY_BUNDLE ...   # everything but the model's cost
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from ab import alternate, load_note, ratio  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key"
TEXTS = ["red summer dress", "navy blue jeans for men", "white sneakers", "striped shirt",
         "black leather handbag", "green kurta", "sports watch", "floral skirt"]  # fmt: skip


def vit_b32_bundle() -> Path:
    """The model helper's cached ViT-B/32-architecture bundle (benchmarks/embed.py)."""
    from embed import vit_b32_bundle as cached_bundle  # type: ignore[import-not-found]

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


def cpu_seconds(pid: int | None = None) -> float | None:
    """User + system CPU seconds of process ``pid`` (None: this process, every thread)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:  # Linux: fields 14 and 15 of /proc/PID/stat, in clock ticks
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_home(data_dir: Path, *, n: int, dim: int) -> None:
    from fashion_search.stores.embedded import sqlite_catalog
    from fashion_search.stores.embedded.sqlite_catalog import SqliteCatalog
    from fashion_search.stores.embedded.vector_index import EmbeddedVectorIndex
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
    catalog._write(lambda conn: [sqlite_catalog._store(conn, item) for item in items])
    catalog.close()
    index.close()


def prepared_home(keep: Path | None, tmp: Path, *, n: int, dim: int) -> Path:
    """A built home: ``keep/<n>x<dim>`` when asked to keep one (built once), else in ``tmp``."""
    data = (keep / f"{n}x{dim}") if keep is not None else tmp / "data"
    if (data / ".complete").is_file():
        return data
    if data.exists():  # an interrupted build
        shutil.rmtree(data)
    t0 = time.perf_counter()
    build_home(data, n=n, dim=dim)
    (data / ".complete").write_text("ok\n")
    print(f"built the home in {time.perf_counter() - t0:.1f} s")
    return data


def baseline_code(ref: str, into: Path) -> Path:
    """``layers/core`` of commit ``ref`` (``git archive``: the repository is left untouched)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "layers/core"], capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "layers" / "core"


class Server:
    """``fashion-search serve`` of one code tree, on a free loopback port."""

    def __init__(self, name: str, code: Path, env: dict[str, str], cwd: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.name = name
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fashion_search.cli", "serve", "--port", str(self.port)],
                env=dict(env, PYTHONPATH=str(code)), cwd=cwd, stdout=log, stderr=log,
            )  # fmt: skip
        self.clients: list[httpx.Client] = []

    def wait_ready(self) -> None:
        for _ in range(900):
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"{self.name} server exited with {self.proc.returncode}:\n{tail}")
            try:
                httpx.get(f"{self.base}/health", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit(f"{self.name} server not ready")

    def client(self, i: int) -> httpx.Client:
        while len(self.clients) <= i:  # one keep-alive connection per simulated user
            self.clients.append(httpx.Client(headers={"X-API-Key": KEY}, timeout=120))
        return self.clients[i]

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def request(server: Server, kind: str, jpeg: bytes) -> Callable[[int, int], float]:
    def call(user: int, i: int) -> float:
        client = server.client(user)
        t0 = time.perf_counter()
        if kind == "text":
            r = client.post(f"{server.base}/get_image_by_text", json={"text": TEXTS[i % 8]})
        else:
            files = {"file": ("q.jpg", jpeg, "image/jpeg")}
            r = client.post(f"{server.base}/get_similar_images", files=files)
        r.raise_for_status()
        return time.perf_counter() - t0

    return call


def closed_loop(
    call: Callable[[int, int], float],
    concurrency: int,
    requests: int,
    samples: list[float],
    cpu: Callable[[], tuple[float | None, float | None]] | None = None,
    costs: list[tuple[float, float]] | None = None,
) -> float:
    """``concurrency`` users, each sending its next request when the last one returns, until
    ``requests`` have been sent; returns requests/s and appends each latency to ``samples``.
    With ``cpu`` (server, client CPU seconds now), appends the round's core-ms per request of
    each to ``costs``."""
    for user in range(concurrency):
        call(user, user)  # open (and warm) each user's connection, untimed
    before = cpu() if cpu else (None, None)
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []

    def user_loop(user: int) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            latencies.append(call(user, i))

    threads = [threading.Thread(target=user_loop, args=(u,)) for u in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    samples.extend(latencies)
    if cpu is not None and costs is not None:
        (s0, c0), (s1, c1) = before, cpu()
        if s0 is not None and s1 is not None and c0 is not None and c1 is not None:
            costs.append(((s1 - s0) * 1000 / requests, (c1 - c0) * 1000 / requests))
    return requests / elapsed


def latency(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "n": len(samples)}  # fmt: skip


def compare_load(
    servers: list[Server], kind: str, jpeg: bytes, concurrency: int, args: argparse.Namespace
) -> dict[str, Any]:
    requests = max(args.requests, 2 * concurrency)
    samples: dict[str, list[float]] = {s.name: [] for s in servers}
    costs: dict[str, list[tuple[float, float]]] = {s.name: [] for s in servers}

    def side(server: Server) -> Callable[[], float]:
        def cpu() -> tuple[float | None, float | None]:
            return cpu_seconds(server.proc.pid), cpu_seconds()

        return lambda: closed_loop(
            request(server, kind, jpeg),
            concurrency,
            requests,
            samples[server.name],
            cpu,
            costs[server.name],
        )

    out = alternate({s.name: side(s) for s in servers}, args.rounds, warm=False)
    for name, values in samples.items():
        out["sides"][name]["latency"] = latency(values)
        if costs[name]:
            server_ms, client_ms = (float(np.median(c)) for c in zip(*costs[name], strict=True))
            out["sides"][name]["core_ms_per_request"] = {
                "server": round(server_ms, 2),
                "client": round(client_ms, 2),
            }
    return out


def compare_in_process(server: Server, jpeg: bytes, env: dict[str, str], rounds: int) -> Any:
    """The same query in this process (Searcher) and through HTTP at concurrency 1."""
    from fashion_search.runtime import build_searcher, limit_blas_threads
    from fashion_search.settings import Settings

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        limit_blas_threads()
        searcher = build_searcher(Settings())
        searcher.warm()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out: dict[str, Any] = {}
    for kind in ("text", "image"):
        http = request(server, kind, jpeg)

        def in_process(i: int, kind: str = kind) -> None:
            if kind == "text":
                searcher.by_text(TEXTS[i % 8])
            else:
                searcher.by_image(jpeg)

        def ms_per_call(fn: Callable[[int], object]) -> Callable[[], float]:
            def one_round() -> float:
                t0 = time.perf_counter()
                for i in range(8):
                    fn(i)
                return (time.perf_counter() - t0) * 1000 / 8

            return one_round

        r = alternate(
            {
                "in-process": ms_per_call(in_process),
                "HTTP": ms_per_call(lambda i, http=http: http(0, i)),
            },
            rounds,
        )
        r["ratio"] = ratio(r, "HTTP", "in-process", lower_is_better=True)
        out[kind] = r
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


def cold_start(env: dict[str, str], mode: str) -> float:
    event = REPO / "events" / "api_v2_text.json"
    cmd = [sys.executable, "-c", COLD, mode, str(REPO / "functions/api/app.py"), str(event), KEY]
    env = dict(env, PYTHONPATH=f"{REPO / 'layers' / 'core'}{os.pathsep}{REPO}")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["total_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--vectors", type=int, default=44_000)
    ap.add_argument("--bundle", type=Path, default=None,
                    help="model bundle (default: the ViT-B/32 one); a tiny bundle measures "
                         "everything a query costs but the model")  # fmt: skip
    ap.add_argument("--baseline", default=None, help="git ref whose server to compare (main)")
    ap.add_argument("--concurrency", default="1,4,16,64", help="text query concurrencies")
    ap.add_argument("--image-concurrency", default="1,4,16", help="image upload concurrencies")
    ap.add_argument("--requests", type=int, default=48, help="requests a round (>= 2 x C)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-start", action="store_true", help="also time Lambda cold starts")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--home",
        type=Path,
        default=None,
        help="keep the built home here and reuse it in later runs (its build is not "
        "timed; run --prepare-only under a test slot, then the timed run)",
    )
    ap.add_argument("--prepare-only", action="store_true", help="build the home (--home), exit")
    args = ap.parse_args()
    if args.prepare_only and args.home is None:
        ap.error("--prepare-only needs --home")

    from fashion_search.model.bundle import Bundle

    bundle = args.bundle.resolve() if args.bundle else vit_b32_bundle()
    dim = Bundle.open(bundle).embed_dim or 512
    jpeg = photo_jpeg(1)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        data = prepared_home(args.home, Path(tmp), n=args.vectors, dim=dim)
        print(f"home: {data} ({args.vectors} vectors, {dim}-d); bundle {bundle}")
        if args.prepare_only:
            return
        env = dict(
            os.environ,
            FASHION_SEARCH_EMBEDDED__DATA_DIR=str(data),
            FASHION_SEARCH_MODEL__BUNDLE=str(bundle),
            FASHION_SEARCH_API__API_KEYS=json.dumps([KEY]),
            FASHION_SEARCH_LOG_LEVEL="WARNING",
        )
        results: dict[str, Any] = {"vectors": args.vectors, "cpus": os.cpu_count(),
                                   "bundle": "ViT-B/32 architecture, random weights"
                                   if args.bundle is None else str(args.bundle),
                                   "rounds": args.rounds, "baseline": args.baseline,
                                   "load_avg_1m_start": round(os.getloadavg()[0], 2)}  # fmt: skip
        servers = [Server("this tree", REPO / "layers" / "core", env, Path(tmp))]
        if args.baseline:
            code = baseline_code(args.baseline, Path(tmp) / "baseline")
            servers.append(Server(f"baseline {args.baseline}", code, env, Path(tmp)))
        try:
            for s in servers:
                s.wait_ready()
            results["in_process_vs_http_c1"] = compare_in_process(servers[0], jpeg, env, 5)
            for kind, levels in (("text", args.concurrency), ("image", args.image_concurrency)):
                for c in (int(x) for x in levels.split(",") if x):
                    r = compare_load(servers, kind, jpeg, c, args)
                    results[f"http_{kind}_c{c}"] = r
                    print_load(kind, c, r)
        finally:
            for s in servers:
                s.stop()
        if args.cold_start:
            results["cold_start_s"] = alternate(
                {m: lambda m=m: cold_start(env, m) for m in ("eager", "lazy")},
                args.rounds, warm=False,
            )  # fmt: skip
        results["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    report(results, servers)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


def print_load(kind: str, c: int, r: dict[str, Any]) -> None:
    print(f"\nHTTP {kind} at concurrency {c}  [{load_note(r)}]")
    for name, s in r["sides"].items():
        lat = s["latency"]
        cost = s.get("core_ms_per_request")
        spent = f"  core-ms/request server {cost['server']:.1f}, client {cost['client']:.1f}"
        print(f"  {name:<16} {s['median']:7.1f} req/s median (min {s['min']:.1f})  "
              f"p50 {lat['p50_ms']:8.1f} ms  p99 {lat['p99_ms']:8.1f} ms"
              f"{spent if cost else ''}")  # fmt: skip


def p99_bound(p50_1_ms: float, cpus: int, side: dict[str, Any]) -> dict[str, float]:
    """What the p99 goal asks of throughput at 16, and of the CPU a request may cost."""
    needs = 16 / (4 * p50_1_ms / 1000)
    out = {"needs_rps": round(needs, 1), "budget_core_ms": round(cpus * 1000 / needs, 2)}
    cost = side.get("core_ms_per_request")
    if cost:
        out["spent_core_ms"] = round(cost["server"] + cost["client"], 2)
    return out


def report(r: dict[str, Any], servers: list[Server]) -> None:
    print(f"\n{r['vectors']} vectors, {r['cpus']} CPUs, {r['bundle']}, {r['rounds']} rounds")
    print(f"load average (1 min): {r['load_avg_1m_start']} -> {r['load_avg_1m_end']}")
    for kind, cmp in r["in_process_vs_http_c1"].items():
        sides = cmp["sides"]
        print(f"{kind:5s} in-process {sides['in-process']['median']:6.1f} ms, HTTP "
              f"{sides['HTTP']['median']:6.1f} ms (median ms per call): HTTP costs "
              f"{1 / cmp['ratio']['median']:.2f}x  [{load_note(cmp)}]")  # fmt: skip
    ours = servers[0].name
    c1, c16 = r.get("http_text_c1"), r.get("http_text_c16")
    if c1 and c16:
        p50_1 = c1["sides"][ours]["latency"]["p50_ms"]
        p99_16 = c16["sides"][ours]["latency"]["p99_ms"]
        goals: dict[str, Any] = {"p99_c16_over_p50_c1": round(p99_16 / p50_1, 2)}
        print(f"goal p99 at 16 <= 4x p50 at 1: {p99_16:.1f} / {p50_1:.1f} = "
              f"{goals['p99_c16_over_p50_c1']:.2f}x")  # fmt: skip
        goals["p99_goal_bound"] = bound = p99_bound(p50_1, r["cpus"], c16["sides"][ours])
        print(f"  16 closed-loop clients: mean latency = 16 / throughput, and p99 >= mean, so the "
              f"goal needs >= {bound['needs_rps']:.0f} req/s (measured "
              f"{c16['sides'][ours]['median']:.1f}): <= {bound['budget_core_ms']:.1f} core-ms a "
              f"request on {r['cpus']} cores; a request cost "
              f"{bound.get('spent_core_ms', float('nan')):.1f} (server + clients)")  # fmt: skip
        if len(servers) > 1:
            base = servers[1].name
            goals["throughput_c16_vs_baseline"] = ratio(c16, ours, base, lower_is_better=False)
            b50 = c1["sides"][base]["latency"]["p50_ms"]
            goals["p50_c1_vs_baseline"] = round(p50_1 / b50, 3)
            print(f"goal throughput at 16 >= 2x baseline: "
                  f"{goals['throughput_c16_vs_baseline']['median']:.2f}x by median")  # fmt: skip
            print(f"goal p50 at 1 unchanged: {p50_1:.1f} vs {b50:.1f} ms "
                  f"({goals['p50_c1_vs_baseline']:.2f}x)")  # fmt: skip
        r["goals"] = goals
    if "cold_start_s" in r:
        cs = r["cold_start_s"]
        for mode, s in cs["sides"].items():
            print(f"Lambda cold start ({mode}): median {s['median']:.2f} s (min {s['min']:.2f})")


if __name__ == "__main__":
    main()
