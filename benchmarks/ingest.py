"""End-to-end ingest throughput of the embedded home, next to the bare model, in one run.

1,000 product-photo JPEGs and their styles.csv go through the catalog loader into the images
folder while the folder watcher (real watchdog notifications) feeds the ingest core, until all
are INDEXED in the embedded index. The same JPEGs through ``embed_images`` alone (decode + image
tower) is the bare figure; the image tower on ready tensors is reported too. Bare and pipeline
alternate in ``--rounds`` rounds (the machine is shared: both see the same neighbours); wall
time and process CPU time are both reported. Model: the
ViT-B/32-architecture bundle (random weights, real shapes) that benchmarks/embed.py builds.

Goal (issue #4): pipeline images/s >= 0.85 x bare (decode + tower) images/s.

    python benchmarks/ingest.py [--n 1000] [--size 300x400] [--json bench-ingest.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
COLOURS = ["Red", "Blue", "Black", "White", "Green", "Navy Blue", "Grey", "Pink"]
TYPES = ["Tshirts", "Shirts", "Jeans", "Casual Shoes", "Tops", "Kurtas", "Watches", "Handbags"]


def vit_b32_bundle() -> Path:
    """The model helper's cached builder (benchmarks/embed.py), else the api benchmark's."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        for name in ("embed", "api"):
            try:
                module = __import__(name)
            except ImportError:
                continue
            builder = getattr(module, "vit_b32_bundle", None)
            if callable(builder):
                return Path(builder())
    finally:
        sys.path.pop(0)
    raise SystemExit("no ViT-B/32 bundle builder found in benchmarks/embed.py or api.py")


def photo_jpeg(seed: int, size: tuple[int, int]) -> bytes:
    """A product-photo-like JPEG (gradients + noise) of ``size`` (w, h)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], axis=-1)
    base = np.roll(base, seed % 3, axis=-1)
    img = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def make_catalog(root: Path, n: int, size: tuple[int, int]) -> tuple[Path, list[str], list[bytes]]:
    """``n`` JPEGs in a Kaggle-style images folder, and their styles.csv lines (no header)."""
    images = root / "kaggle" / "images"
    images.mkdir(parents=True)
    lines, blobs = [], []
    for i in range(n):
        data = photo_jpeg(i, size)
        blobs.append(data)
        (images / f"{10000 + i}.jpg").write_bytes(data)
        colour, kind = COLOURS[i % len(COLOURS)], TYPES[i % len(TYPES)]
        lines.append(
            f"{10000 + i},{('Men', 'Women')[i % 2]},Apparel,Topwear,{kind},{colour},Summer,"
            f"2012,Casual,Brand {i} {colour} {kind}, slim fit"
        )
    return images, lines, blobs


HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"


class Bare:
    """The bare model: ``embed_images`` on the JPEG bytes (decode + tower), nothing else."""

    def __init__(self, bundle: Path, batch: int) -> None:
        from fashion_search.model.embedder import OnnxClipEmbedder

        self.emb = OnnxClipEmbedder.from_bundle(bundle, batch_size=batch)
        self.emb.load()
        self.emb.embed_images([photo_jpeg(0, (64, 64))] * batch)  # warm-up
        _ = self.emb.model_id  # hashes the bundle once: a cold-start cost, not per image
        self.batch = batch

    def run(self, blobs: list[bytes]) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        result = self.emb.embed_images(blobs)
        assert not result.errors
        return time.perf_counter() - t0, time.process_time() - c0

    def tower_only(self, blobs: list[bytes]) -> float:
        tensors = np.stack([self.emb.prepare_image(b) for b in blobs])
        t0 = time.perf_counter()
        for start in range(0, len(tensors), self.batch):
            self.emb.embed_image_tensors(tensors[start : start + self.batch])
        return len(tensors) / (time.perf_counter() - t0)


class Pipeline:
    """Loader -> images folder -> watcher (watchdog) -> ingest core -> embedded index."""

    def __init__(self, bundle: Path, data_dir: Path, batch: int) -> None:
        from fashion_search.ingest.triggers.watcher import FolderWatcher
        from fashion_search.runtime import open_runtime
        from fashion_search.settings import EmbeddedSettings, ModelSettings, Settings

        settings = Settings(
            embedded=EmbeddedSettings(data_dir=data_dir),
            model=ModelSettings(bundle=bundle, batch_size=batch),
        )
        runtime = open_runtime(settings, load_now=True)
        runtime.embedder.embed_images([photo_jpeg(0, (64, 64))] * batch)  # warm-up, as bare had
        _ = runtime.embedder.model_id
        self.stores = runtime.stores
        ingestor = runtime.ingestor()
        watcher = FolderWatcher(ingestor, settings.embedded.images_dir, settle_s=0.2)
        self.stop = threading.Event()
        self.indexed = 0
        self.changed = threading.Condition()
        self.thread = threading.Thread(
            target=watcher.run,
            args=(self.stop,),
            kwargs={"poll_s": 0.05, "on_batch": self._on_batch},
        )
        self.thread.start()
        time.sleep(0.5)
        self.done = 0

    def _on_batch(self, outcomes: list[Any]) -> None:
        # Told by the watcher, not polled: a polling loop here would cost CPU the bare run
        # does not pay.
        with self.changed:
            self.indexed += sum(o.status.value == "indexed" for o in outcomes)
            self.changed.notify_all()

    def run(self, styles: Path, images: Path, n: int) -> tuple[float, float, float]:
        from fashion_search.ingest.kaggle.loader import CatalogLoader

        t0, c0 = time.perf_counter(), time.process_time()
        summary = CatalogLoader(self.stores, workers=4).load(styles, images)
        loaded = time.perf_counter() - t0
        assert summary.loaded == n, summary.as_dict()
        self.done += n
        with self.changed:
            if not self.changed.wait_for(lambda: self.indexed >= self.done, timeout=3600):
                raise SystemExit("pipeline did not finish within an hour")
        return time.perf_counter() - t0, time.process_time() - c0, loaded

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", default="300x400", help="JPEG width x height")
    ap.add_argument("--batch", type=int, default=16, help="model batch size (settings default)")
    ap.add_argument("--rounds", type=int, default=4, help="bare/pipeline alternations")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    bundle = vit_b32_bundle()
    # Bare and pipeline alternate in rounds over the same images, so the neighbours' load on a
    # shared machine, which changes by the minute, weighs on both alike.
    totals = {"bare_s": 0.0, "bare_cpu_s": 0.0, "pipe_s": 0.0, "pipe_cpu_s": 0.0, "load_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        images, lines, blobs = make_catalog(root, args.n, (w, h))
        bare_model = Bare(bundle, args.batch)
        pipe = Pipeline(bundle, root / "data", args.batch)
        step = -(-args.n // args.rounds)
        try:
            for r, start in enumerate(range(0, args.n, step)):
                chunk = lines[start : start + step]
                styles = root / f"styles-{r}.csv"
                styles.write_text(HEADER + "productDisplayName\n" + "\n".join(chunk) + "\n")
                wall, cpu = bare_model.run(blobs[start : start + step])
                totals["bare_s"] += wall
                totals["bare_cpu_s"] += cpu
                wall, cpu, loaded = pipe.run(styles, images, len(chunk))
                totals["pipe_s"] += wall
                totals["pipe_cpu_s"] += cpu
                totals["load_s"] += loaded
                print(f"round {r + 1}/{args.rounds}: {totals}", file=sys.stderr, flush=True)
            assert pipe.stores.vectors.count() == args.n
        finally:
            pipe.close()
        tower = bare_model.tower_only(blobs[: args.batch * 8])
    n = args.n
    ratio = totals["bare_s"] / totals["pipe_s"]
    cpu_ratio = totals["bare_cpu_s"] / totals["pipe_cpu_s"]
    bare_figures = {
        "decode_plus_tower_images_per_s": round(n / totals["bare_s"], 2),
        "decode_plus_tower_images_per_cpu_s": round(n / totals["bare_cpu_s"], 3),
        "tower_only_images_per_s": round(tower, 2),
    }
    pipe_figures = {
        "images": n,
        "images_per_s": round(n / totals["pipe_s"], 2),
        "images_per_cpu_s": round(n / totals["pipe_cpu_s"], 3),
        "loader_s": round(totals["load_s"], 2),
    }
    result = {
        "bundle": bundle.name,
        "jpeg_size": args.size,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "bare": bare_figures,
        "pipeline": pipe_figures,
        "rounds": args.rounds,
        "ratio_to_bare": round(ratio, 3),
        "cpu_ratio_to_bare": round(cpu_ratio, 3),
        "goal": 0.85,
        "goal_met": ratio >= 0.85,
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
