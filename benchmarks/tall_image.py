"""Time and peak memory of ``POST /get_similar_images`` with a 1 x 100000 PNG (475 bytes) next to
a normal 512 x 512 upload, in the same run (issue #13).

Each sample is one request in a fresh process (the committed demo model, an empty embedded home,
the app through Starlette's TestClient), so its peak RSS is that request's alone. The two kinds
alternate (ABAB...) for ``--rounds`` rounds; the load average is printed beside the figures.

    python benchmarks/tall_image.py [--rounds 3] [--json bench-tall.json]

Run it with ``PYTHONPATH`` at another checkout's ``layers/core`` to measure that code instead.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KINDS = {"tall": (1, 100_000), "normal": (512, 512)}


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(kind: str) -> dict[str, Any]:
    """One request of ``kind`` in this process: status, seconds, peak RSS and its growth."""
    from fashion_search.api import create_app
    from fashion_search.settings import ApiSettings, EmbeddedSettings, ModelSettings, Settings
    from fastapi.testclient import TestClient

    data = _png(*KINDS[kind])
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            model=ModelSettings(bundle=REPO / "models/demo", intra_op_threads=1),
            embedded=EmbeddedSettings(data_dir=Path(tmp)),
            api=ApiSettings(auth_disabled=True, public_url="http://testserver"),
        )
        app = create_app(settings)
        with TestClient(app) as client:
            client.get("/health")  # model and stores loaded before the measured request
            before = _rss_mb()
            start = time.perf_counter()
            r = client.post("/get_similar_images", files={"file": ("x.png", data, "image/png")})
            seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "kind": kind,
        "bytes": len(data),
        "status": r.status_code,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "growth_mb": peak - before,
        "answer": r.json().get("error", {}).get("message", "ok")[:120],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", choices=sorted(KINDS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    for _ in range(args.rounds):
        for kind in ("tall", "normal"):  # alternated
            out = subprocess.run(
                [sys.executable, __file__, "--one", kind],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            samples[kind].append(json.loads(out.strip().splitlines()[-1]))
    load = os.getloadavg()
    summary: dict[str, Any] = {"load_avg": load, "rounds": args.rounds, "samples": samples}
    for kind, rows in samples.items():
        secs = [r["seconds"] for r in rows]
        grow = [r["growth_mb"] for r in rows]
        summary[kind] = {
            "status": sorted({r["status"] for r in rows}),
            "seconds_min": min(secs),
            "seconds_median": statistics.median(secs),
            "growth_mb_min": min(grow),
            "growth_mb_median": statistics.median(grow),
            "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in rows),
            "answer": rows[0]["answer"],
        }
    tall, normal = summary["tall"], summary["normal"]
    summary["ratio_seconds_median"] = tall["seconds_median"] / normal["seconds_median"]
    summary["ratio_peak_rss_median"] = tall["peak_rss_mb_median"] / normal["peak_rss_mb_median"]
    for kind in KINDS:
        s = summary[kind]
        print(
            f"{kind:6s} status {s['status']} time min {s['seconds_min'] * 1000:.0f} ms "
            f"median {s['seconds_median'] * 1000:.0f} ms; peak RSS median "
            f"{s['peak_rss_mb_median']:.0f} MB (request grew it {s['growth_mb_median']:.0f} MB)"
            f" -- {s['answer']}"
        )
    print(
        f"tall/normal: time x{summary['ratio_seconds_median']:.2f}, peak RSS "
        f"x{summary['ratio_peak_rss_median']:.2f}  (load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}, {args.rounds} rounds ABAB)"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
