"""CLIP embedding speed next to transformers' CLIP, fp32 vs int8, and int8's top-10 agreement.

Builds once (cached in ``.cache/bench-bundles/``) a bundle with the real ViT-B/32 architecture
and random weights (compute does not depend on the weights) plus its int8 copy, and rebuilds the
same transformers ``CLIPModel`` (same seed, same weights) as the reference. Then, in one run, the
sides of each comparison taking turns round by round (AB, BA, ...; min and median over rounds,
the load average beside each):

- text, one query at a time: the project (its own length, bucketed), the project padded to the
  77-token context (what it did before; what immich's fixed bundles do) and transformers on the
  query's own length;
- image tower on ready tensors, batch 1 and 8: transformers vs the project's bare tower, and the
  project end-to-end from JPEG bytes (512x512 and 1080x1440: safe decode with JPEG draft,
  preprocess, pipelined with inference) vs bare (goal >= 0.85);
- int8 vs fp32: image tower batch 8 and text (goal >= 2x on images);
- text batches (``--parts text-batch``): the API benchmark's queries as one batch of 4, 8 and 16
  vs the same queries one at a time: what the model queue's grouping can save a query (the
  floor of a text query's model cost under load; docs/api.md);
- top-10 agreement of int8 with fp32 per task and per quantised tower, on this random model and
  on the trained demo model over demo-catalog products (``--demo``, default on).

    python benchmarks/embed.py --json bench-embed.json [--rounds 5]

Needs the export extra (torch, transformers, onnx).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from fashion_search.model.embedder import OnnxClipEmbedder
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from ab import alternate, load_note, ratio  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 8)
SIZES = ((512, 512), (1080, 1440))
# v2: the text graph has a dynamic sequence axis (model export's default since issue 17).
BUNDLE_NAME = "vit-b-32-random-v2"
SEED = 0
QUERIES = ["red dress", "navy blue jeans for men", "white leather sneakers with a thick sole",
           "striped cotton shirt", "black handbag", "a long flowing green summer dress with "
           "short sleeves and a floral print", "sports watch", "kids' rain jacket"]  # fmt: skip


def reference_model() -> Any:
    """transformers' CLIP with the benchmark bundle's weights (same config, same seed)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    # CLIPConfig's defaults are OpenAI's ViT-B/32: 224 px, patch 32, 12+12 layers, 512-d.
    config = CLIPConfig(text_config={"bos_token_id": 49406, "eos_token_id": 49407})
    torch.manual_seed(SEED)
    return CLIPModel(config).eval()


def build_bundles(cache: Path, *, with_int8: bool = True) -> tuple[Path, Path]:
    fp32, int8 = cache / BUNDLE_NAME, cache / f"{BUNDLE_NAME}-int8"
    if not (fp32 / ".complete").is_file():
        from fashion_search.model.build.export import export_hf_clip

        print(f"building {fp32} (ViT-B/32 architecture, random weights) ...", flush=True)
        export_hf_clip(reference_model(), fp32)
        (fp32 / ".complete").write_text("ok\n")
    if with_int8:
        quantised(fp32, int8)
    return fp32, int8


def quantised(fp32: Path, int8: Path) -> Path:
    if not (int8 / ".complete").is_file():
        from fashion_search.model.build.quantize import quantize_bundle

        print(f"quantising to {int8} ...", flush=True)
        quantize_bundle(fp32, int8)
        (int8 / ".complete").write_text("ok\n")
    return int8


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


def per_query_ms(fn: Callable[[str], object]) -> Callable[[], float]:
    """One round: every query once; the figure is the mean ms per query."""

    def one_round() -> float:
        start = time.perf_counter()
        for q in QUERIES:
            fn(q)
        return (time.perf_counter() - start) * 1000 / len(QUERIES)

    return one_round


def images_per_s(fn: Callable[[], object], n: int) -> Callable[[], float]:
    def one_round() -> float:
        start = time.perf_counter()
        fn()
        return n / (time.perf_counter() - start)

    return one_round


def compare_text(emb: OnnxClipEmbedder, ref: Any, rounds: int) -> dict[str, Any]:
    import torch

    def transformers_own_length(q: str) -> None:
        ids = torch.tensor([emb.tokenizer.token_ids(q)])
        with torch.no_grad():
            ref.get_text_features(input_ids=ids)

    def padded_77(q: str) -> None:  # the tower on the full context, as before issue 17
        emb.textual.run(emb.tokenizer([q]))

    sides = {
        "project": per_query_ms(lambda q: emb.embed_texts([q])),
        "project padded to 77": per_query_ms(padded_77),
        "transformers": per_query_ms(transformers_own_length),
    }
    out = alternate(sides, rounds)
    out["ratio_vs_transformers"] = ratio(out, "project", "transformers", lower_is_better=True)
    out["ratio_vs_padded"] = ratio(out, "project", "project padded to 77", lower_is_better=True)
    show("text, ms per query (batch 1)", out, "ms", [
        ("project vs transformers", out["ratio_vs_transformers"]),
        ("project vs padded to 77", out["ratio_vs_padded"])])  # fmt: skip
    return out


def compare_text_batches(emb: OnnxClipEmbedder, rounds: int) -> dict[str, Any]:
    """ms per query: one batch of n vs the same n queries one at a time (at their own length)."""
    from api import TEXTS  # type: ignore[import-not-found]  # the API benchmark's queries

    out: dict[str, Any] = {}
    for n in (4, 8, 16):
        queries = [TEXTS[i % len(TEXTS)] for i in range(n)]

        def batched(qs: list[str] = queries) -> float:
            start = time.perf_counter()
            emb.embed_texts(qs)
            return (time.perf_counter() - start) * 1000 / len(qs)

        def singly(qs: list[str] = queries) -> float:
            start = time.perf_counter()
            for q in qs:
                emb.embed_texts([q])
            return (time.perf_counter() - start) * 1000 / len(qs)

        r = alternate({"one at a time": singly, f"batch of {n}": batched}, rounds)
        r["ratio"] = ratio(r, f"batch of {n}", "one at a time", lower_is_better=True)
        show(f"text, ms per query, batch of {n} vs one at a time", r, "ms",
             [(f"batch of {n} vs one at a time", r["ratio"])])  # fmt: skip
        out[str(n)] = r
    return out


def compare_images(
    emb: OnnxClipEmbedder, ref: Any, jpegs: dict[str, list[bytes]], batch: int, rounds: int
) -> dict[str, Any]:
    import torch

    n = len(next(iter(jpegs.values())))
    s = emb.bundle.image_size
    tensors = np.random.default_rng(1).standard_normal((n, 3, s, s), dtype=np.float32)
    torch_tensors = torch.from_numpy(tensors)

    def transformers_bare() -> None:
        with torch.no_grad():
            for i in range(0, n, batch):
                ref.get_image_features(pixel_values=torch_tensors[i : i + batch])

    def project_e2e(data: list[bytes]) -> Callable[[], object]:
        def run() -> None:
            result = emb.embed_images(data)
            assert not result.errors, result.errors

        return run

    emb.batch_size = batch
    sides = {
        "transformers bare": images_per_s(transformers_bare, n),
        "project bare": images_per_s(lambda: emb.embed_image_tensors(tensors), n),
    }
    for name, data in jpegs.items():
        sides[f"project e2e {name}"] = images_per_s(project_e2e(data), n)
    out = alternate(sides, rounds)
    out["ratio_bare_vs_transformers"] = ratio(
        out, "project bare", "transformers bare", lower_is_better=False
    )
    ratios = [("project bare vs transformers", out["ratio_bare_vs_transformers"])]
    for name in jpegs:
        key = f"ratio_e2e_{name}_vs_bare"
        out[key] = ratio(out, f"project e2e {name}", "project bare", lower_is_better=False)
        ratios.append((f"e2e {name} vs bare (goal >= 0.85)", out[key]))
    show(f"image, images/s at batch {batch} ({n} images a round)", out, "/s", ratios)
    return out


def compare_int8(
    fp32: OnnxClipEmbedder, int8: OnnxClipEmbedder, n: int, rounds: int
) -> dict[str, Any]:
    s = fp32.bundle.image_size
    tensors = np.random.default_rng(1).standard_normal((n, 3, s, s), dtype=np.float32)
    fp32.batch_size = int8.batch_size = 8
    images = alternate(
        {
            "fp32 bare": images_per_s(lambda: fp32.embed_image_tensors(tensors), n),
            "int8 bare": images_per_s(lambda: int8.embed_image_tensors(tensors), n),
        },
        rounds,
    )
    images["ratio"] = ratio(images, "int8 bare", "fp32 bare", lower_is_better=False)
    show("int8 vs fp32, image tower batch 8, images/s", images, "/s",
         [("int8 vs fp32 (goal >= 2x)", images["ratio"])])  # fmt: skip
    text = alternate(
        {
            "fp32": per_query_ms(lambda q: fp32.embed_texts([q])),
            "int8": per_query_ms(lambda q: int8.embed_texts([q])),
        },
        rounds,
    )
    text["ratio"] = ratio(text, "int8", "fp32", lower_is_better=True)
    show("int8 vs fp32, text ms per query", text, "ms", [("int8 vs fp32", text["ratio"])])
    return {"image_batch8": images, "text": text}


def top10(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1)[:, :10]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def agreement(
    fp32: OnnxClipEmbedder, int8: OnnxClipEmbedder, corpus: list[bytes], queries: list[str]
) -> dict[str, float]:
    """Mean overlap of each query's top-10 under int8 with its top-10 under fp32, per task and
    per quantised tower: ``visual`` (int8 image tower, fp32 text) and ``both``."""
    img32, img8 = fp32.embed_images(corpus).vectors, int8.embed_images(corpus).vectors
    txt32, txt8 = fp32.embed_texts(queries), int8.embed_texts(queries)
    truth_t, truth_i = top10(txt32 @ img32.T), top10(img32[:50] @ img32.T)
    return {
        "image_to_image": overlap(truth_i, top10(img8[:50] @ img8.T)),
        "text_to_image_both_int8": overlap(truth_t, top10(txt8 @ img8.T)),
        "text_to_image_visual_int8": overlap(truth_t, top10(txt32 @ img8.T)),
        "text_to_image_textual_int8": overlap(truth_t, top10(txt8 @ img32.T)),
        "mean_cosine_image": float(np.mean(np.sum(img32 * img8, axis=1))),
        "mean_cosine_text": float(np.mean(np.sum(txt32 * txt8, axis=1))),
    }


def demo_agreement(cache: Path, threads: int | None, products: int) -> dict[str, Any]:
    """The same on the committed, trained demo model over demo-catalog products."""
    from fashion_search.demo.catalog import iter_products, render_product

    demo = REPO / "models" / "demo"
    int8_path = quantised(demo, cache / "demo-int8")
    fp32 = OnnxClipEmbedder.from_bundle(demo, intra_op_threads=threads)
    int8 = OnnxClipEmbedder.from_bundle(int8_path, intra_op_threads=threads)
    items = list(iter_products(products=products))
    corpus = [render_product(p) for p in items]
    queries = sorted({p.display_name for p in items})[:100]
    return agreement(fp32, int8, corpus, queries)


def show(title: str, result: dict[str, Any], unit: str, ratios: list[tuple[str, Any]]) -> None:
    print(f"\n{title}  [{load_note(result)}]")
    for name, s in result["sides"].items():
        print(f"  {name:<28} median {s['median']:8.1f} {unit}  min {s['min']:8.1f}  "
              f"max {s['max']:8.1f}")  # fmt: skip
    for label, r in ratios:
        best = r.get("min", r.get("max"))
        print(f"  {label:<40} {r['median']:.2f}x by median ({best:.2f}x best round)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "bench-bundles")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds of each comparison.")
    parser.add_argument("--images", type=int, default=16, help="Images per round.")
    parser.add_argument("--corpus", type=int, default=200, help="Images for top-10 agreement.")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads.")
    parser.add_argument("--no-demo", action="store_true", help="Skip the demo-model agreement.")
    parser.add_argument(
        "--parts", default="text,text-batch,image,int8,agreement", help="Which comparisons to run."
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    fp32_path, int8_path = build_bundles(args.cache)
    ref = reference_model() if parts & {"text", "image"} else None
    fp32 = OnnxClipEmbedder.from_bundle(fp32_path, intra_op_threads=args.threads)
    int8 = OnnxClipEmbedder.from_bundle(int8_path, intra_op_threads=args.threads)
    fp32.load()
    int8.load()
    jpegs = {f"{w}x{h}": [photo_like(w, h, seed=i) for i in range(args.images)] for w, h in SIZES}
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "onnxruntime": onnxruntime.__version__,
            "torch_threads": torch.get_num_threads(),
            "threads": args.threads,
        },
        "bundle": "ViT-B/32 architecture, random weights",
        "text_length": {"fp32": fp32.text_length, "int8": int8.text_length},
        "rounds": args.rounds,
        "jpeg_kb": {
            k: round(float(np.mean([len(b) for b in v])) / 1024, 1) for k, v in jpegs.items()
        },
        "load_avg_1m_start": round(os.getloadavg()[0], 2),
    }
    print(f"bundle {fp32_path}: text length {fp32.text_length}; int8 {int8.text_length}")
    if "text" in parts:
        results["text"] = compare_text(fp32, ref, args.rounds)
    if "text-batch" in parts:
        results["text_batches"] = compare_text_batches(fp32, args.rounds)
    if "image" in parts:
        results["image"] = {
            str(b): compare_images(fp32, ref, jpegs, b, args.rounds) for b in BATCHES
        }
    if "int8" in parts:
        results["int8"] = compare_int8(fp32, int8, args.images, args.rounds)
    if "agreement" in parts:
        agreement_part(results, fp32, int8, args)
    results["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


def agreement_part(
    results: dict[str, Any],
    fp32: OnnxClipEmbedder,
    int8: OnnxClipEmbedder,
    args: argparse.Namespace,
) -> None:
    corpus = [photo_like(320, 400, seed=1000 + i) for i in range(args.corpus)]
    words = ["red", "blue", "cotton", "summer", "leather", "striped", "men's", "women's", "kids"]
    items = ["dress", "t-shirt", "sneakers", "jeans", "handbag", "watch", "jacket", "scarf"]
    rng = np.random.default_rng(2)
    queries = [f"a {rng.choice(words)} {rng.choice(words)} {rng.choice(items)}" for _ in range(50)]
    results["int8_agreement"] = {"vit_b32_random": agreement(fp32, int8, corpus, queries)}
    if not args.no_demo:
        results["int8_agreement"]["demo_trained"] = demo_agreement(
            args.cache, args.threads, args.corpus * 2
        )
    print("\nint8 top-10 agreement with fp32 (1.0: the same ten results)")
    for model, figures in results["int8_agreement"].items():
        print(f"  {model}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
