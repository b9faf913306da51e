"""CLIP embedding speed: bare image tower vs end-to-end from JPEG bytes, text latency, fp32 vs int8.

Builds once (cached in ``.cache/bench-bundles/``) a bundle with the real ViT-B/32 architecture
and random weights (compute does not depend on the weights) plus its int8 copy, then measures in
one run on this machine:

- bare onnxruntime image-tower throughput on ready tensors, batch 1 / 8 / 16;
- end-to-end throughput from JPEG bytes (512x512 and 1080x1440) to embeddings, same batches,
  through ``OnnxClipEmbedder.embed_images`` (safe decode with JPEG draft, preprocess, pipelined
  with inference), and its ratio to bare (goal >= 0.85);
- text-tower latency p50 / p99 at batch 1;
- the same for int8, its speed-up over fp32 (goal >= 2x) and top-10 agreement with fp32.

    python benchmarks/embed.py --json bench-embed.json

Needs the export extra (torch, transformers, onnx) only for the first build.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from fashion_search.model.embedder import OnnxClipEmbedder
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 8, 16)
SIZES = ((512, 512), (1080, 1440))
BUNDLE_NAME = "vit-b-32-random"
SEED = 0


def build_bundles(cache: Path, *, with_int8: bool = True) -> tuple[Path, Path]:
    fp32, int8 = cache / BUNDLE_NAME, cache / f"{BUNDLE_NAME}-int8"
    if not (fp32 / ".complete").is_file():
        import torch
        from fashion_search.model.export import export_hf_clip
        from transformers import CLIPConfig, CLIPModel

        print(f"building {fp32} (ViT-B/32 architecture, random weights) ...", flush=True)
        # CLIPConfig's defaults are OpenAI's ViT-B/32: 224 px, patch 32, 12+12 layers, 512-d.
        config = CLIPConfig(text_config={"bos_token_id": 49406, "eos_token_id": 49407})
        torch.manual_seed(SEED)
        export_hf_clip(CLIPModel(config), fp32)
        (fp32 / ".complete").write_text("ok\n")
    if with_int8 and not (int8 / ".complete").is_file():
        from fashion_search.model.quantize import quantize_bundle

        print(f"quantising to {int8} ...", flush=True)
        quantize_bundle(fp32, int8)
        (int8 / ".complete").write_text("ok\n")
    return fp32, int8


def vit_b32_bundle() -> Path:
    """The fp32 benchmark bundle (built on first use); other benchmarks reuse it."""
    return build_bundles(REPO / ".cache" / "bench-bundles", with_int8=False)[0]


def photo_like(width: int, height: int, seed: int) -> bytes:
    """A JPEG (quality 90) of smooth gradients, a shape and mild sensor-like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [
            140 + 90 * np.sin(x / (width / 2.5) + seed),
            140 + 90 * np.cos(y / (height / 3.0) - seed),
            140 + 70 * np.sin((x + y) / (width + height) * 5),
        ],
        axis=-1,
    )
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    img[((x - cx) ** 2 + (y - cy) ** 2) < (min(width, height) / 4) ** 2] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, size=img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def bare_rate(emb: OnnxClipEmbedder, batch: int, n: int) -> float:
    emb.batch_size = batch
    s = emb.bundle.image_size
    tensors = np.random.default_rng(1).standard_normal((n, 3, s, s), dtype=np.float32)
    emb.embed_image_tensors(tensors[:batch])  # warm-up
    start = time.perf_counter()
    emb.embed_image_tensors(tensors)
    return n / (time.perf_counter() - start)


def e2e_rate(emb: OnnxClipEmbedder, jpegs: list[bytes], batch: int) -> float:
    emb.batch_size = batch
    emb.embed_images(jpegs[:batch])  # warm-up
    start = time.perf_counter()
    result = emb.embed_images(jpegs)
    elapsed = time.perf_counter() - start
    assert not result.errors, result.errors
    return len(jpegs) / elapsed


def text_latency(emb: OnnxClipEmbedder, queries: list[str]) -> dict[str, float]:
    emb.embed_texts(queries[:2])
    samples = []
    for q in queries:
        start = time.perf_counter()
        emb.embed_texts([q])
        samples.append(time.perf_counter() - start)
    ms = np.asarray(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def measure(
    emb: OnnxClipEmbedder, jpegs: dict[str, list[bytes]], n: int, queries: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"bare": {}, "e2e": {}, "ratio": {}}
    for batch in BATCHES:
        out["bare"][str(batch)] = bare_rate(emb, batch, n)
        print(f"  bare      batch {batch:>2}: {out['bare'][str(batch)]:6.1f} images/s", flush=True)
    for name, data in jpegs.items():
        out["e2e"][name], out["ratio"][name] = {}, {}
        for batch in BATCHES:
            rate = e2e_rate(emb, data, batch)
            ratio = rate / out["bare"][str(batch)]
            out["e2e"][name][str(batch)], out["ratio"][name][str(batch)] = rate, ratio
            print(
                f"  e2e {name:>9} batch {batch:>2}: {rate:6.1f} images/s  ratio {ratio:.2f}",
                flush=True,
            )
    out["text"] = text_latency(emb, queries)
    print(f"  text batch 1: p50 {out['text']['p50_ms']:.1f} ms  p99 {out['text']['p99_ms']:.1f} ms")
    return out


def top10_agreement(
    fp32: OnnxClipEmbedder, int8: OnnxClipEmbedder, corpus: list[bytes], queries: list[str]
) -> dict[str, float]:
    """Mean overlap of the top-10 images per query (text->image and image->image)."""

    def overlap(a_scores: np.ndarray, b_scores: np.ndarray) -> float:
        a = np.argsort(-a_scores, axis=1)[:, :10]
        b = np.argsort(-b_scores, axis=1)[:, :10]
        return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))

    img32, img8 = fp32.embed_images(corpus).vectors, int8.embed_images(corpus).vectors
    txt32, txt8 = fp32.embed_texts(queries), int8.embed_texts(queries)
    return {
        "text_to_image": overlap(txt32 @ img32.T, txt8 @ img8.T),
        "image_to_image": overlap(img32[:50] @ img32.T, img8[:50] @ img8.T),
        "mean_cosine_fp32_int8": float(np.mean(np.sum(img32 * img8, axis=1))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "bench-bundles")
    parser.add_argument("--images", type=int, default=64, help="Images per measurement.")
    parser.add_argument("--queries", type=int, default=100, help="Text queries for latency.")
    parser.add_argument("--corpus", type=int, default=200, help="Images for top-10 agreement.")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads.")
    args = parser.parse_args()

    fp32_path, int8_path = build_bundles(args.cache)
    jpegs = {f"{w}x{h}": [photo_like(w, h, seed=i) for i in range(args.images)] for w, h in SIZES}
    words = ["red", "blue", "cotton", "summer", "leather", "striped", "men's", "women's", "kids"]
    items = ["dress", "t-shirt", "sneakers", "jeans", "handbag", "watch", "jacket", "scarf"]
    rng = np.random.default_rng(2)
    queries = [
        f"a {rng.choice(words)} {rng.choice(words)} {rng.choice(items)}"
        for _ in range(args.queries)
    ]
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "onnxruntime": onnxruntime.__version__,
            "threads": args.threads,
        },
        "jpeg_kb": {
            k: round(float(np.mean([len(b) for b in v])) / 1024, 1) for k, v in jpegs.items()
        },
    }
    embedders = {}
    for name, path in (("fp32", fp32_path), ("int8", int8_path)):
        emb = OnnxClipEmbedder.from_bundle(path, intra_op_threads=args.threads)
        emb.load()
        print(f"{name}: {path}", flush=True)
        results[name] = measure(emb, jpegs, args.images, queries)
        embedders[name] = emb
    results["int8_speedup"] = {
        b: results["int8"]["bare"][b] / results["fp32"]["bare"][b] for b in map(str, BATCHES)
    }
    print(
        "int8 speed-up (bare): "
        + ", ".join(f"batch {b} {v:.2f}x" for b, v in results["int8_speedup"].items())
    )
    corpus = [photo_like(320, 400, seed=1000 + i) for i in range(args.corpus)]
    results["int8_agreement"] = top10_agreement(
        embedders["fp32"], embedders["int8"], corpus, queries[:50]
    )
    print(
        "int8 top-10 agreement: "
        + ", ".join(f"{k} {v:.3f}" for k, v in results["int8_agreement"].items())
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
