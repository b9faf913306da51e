"""The fashion models side by side: bundle size fp32/int8, image and text speed vs open_clip.

For each architecture users pick (``ViT-B-16-SigLIP``: Marqo-FashionSigLIP; ``ViT-B-32``:
Marqo-FashionCLIP, and the same graph as FashionCLIP 2.0 and OpenAI ViT-B/32), builds once with
random weights (compute does not depend on the weights) an fp32 bundle with the project's
open_clip exporter and its int8 copy, cached in ``.cache/bench-bundles/open-clip/``, then in one
run, the sides alternated round by round (ABCABC...):

- image tower on ready tensors, batch 8: our fp32 and int8 (both towers quantised) bundles vs
  open_clip's model in PyTorch (the reference), images/s;
- one text query at batch 1, tokenizer included: ours vs open_clip's tokenizer + model, ms.

Prints min and median per side, the ratio of medians against the reference, and the load
average before and after; ``--json`` writes the same.

    python benchmarks/models.py --json .bench/models.json [--rounds 3] [--arch ViT-B-32]

Needs the export extra plus open_clip_torch and timm. Where torchvision cannot be imported beside
torch, open_clip is imported beside the tests' stand-in (tests/fixtures/_torchvision_standin).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fashion_search.model.embedder import OnnxClipEmbedder  # noqa: E402

from tests.fixtures.open_clip_models import (  # noqa: E402
    CLIP_ARCH,
    SIGLIP_ARCH,
    export_bundle,
    import_open_clip,
    reference_model,
    write_source,
)

CACHE = REPO / ".cache" / "bench-bundles" / "open-clip"
BATCH = 8
QUERIES = ["red summer dress", "men's black leather shoes", "blue striped shirt", "white sneakers"]


def build(open_clip: Any, arch: str) -> tuple[str, Path, Path]:
    root = CACHE / arch
    source = write_source(root / "source", open_clip, arch)
    fp32, int8 = root / "bundle", root / "bundle-int8"
    if not (fp32 / ".complete").is_file():
        print(f"exporting {arch} (random weights) ...", flush=True)
        export_bundle(source, fp32)
        (fp32 / ".complete").write_text("ok\n")
    if not (int8 / ".complete").is_file():
        from fashion_search.model.build.quantize import quantize_bundle

        print(f"quantising {arch} ...", flush=True)
        quantize_bundle(fp32, int8, towers=("visual", "textual"))  # both towers
        (int8 / ".complete").write_text("ok\n")
    return source, fp32, int8


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values)}


def measure(open_clip: Any, arch: str, rounds: int) -> dict[str, Any]:
    import torch

    source, fp32, int8 = build(open_clip, arch)
    ours = {
        "fp32": OnnxClipEmbedder.from_bundle(fp32, batch_size=BATCH),
        "int8": OnnxClipEmbedder.from_bundle(int8, batch_size=BATCH),
    }
    model = reference_model(open_clip, source)
    tokenizer = open_clip.get_tokenizer(source)
    size = ours["fp32"].bundle.image_size
    pixels = np.random.default_rng(0).normal(size=(BATCH, 3, size, size)).astype(np.float32)
    tensor = torch.from_numpy(pixels)

    def torch_images() -> None:
        with torch.no_grad():
            model.encode_image(tensor)

    def torch_text(q: str) -> None:
        with torch.no_grad():
            model.encode_text(tokenizer([q]))

    image_sides: dict[str, Callable[[], object]] = {
        "open_clip torch fp32": torch_images,
        **{f"ours {k}": (lambda e=e: e.embed_image_tensors(pixels)) for k, e in ours.items()},
    }
    text_sides: dict[str, Callable[[str], object]] = {
        "open_clip torch fp32": torch_text,
        **{f"ours {k}": (lambda q, e=e: e.embed_texts([q])) for k, e in ours.items()},
    }
    for fn in image_sides.values():  # warm-up: sessions open, first-call allocations
        fn()
    for tfn in text_sides.values():
        tfn(QUERIES[0])
    image_rates: dict[str, list[float]] = {k: [] for k in image_sides}
    text_ms: dict[str, list[float]] = {k: [] for k in text_sides}
    for _ in range(rounds):
        for name, fn in image_sides.items():
            image_rates[name].append(BATCH / timed(fn))
        for name, tfn in text_sides.items():
            for q in QUERIES:
                text_ms[name].append(1000 * timed(lambda tfn=tfn, q=q: tfn(q)))
    ref = "open_clip torch fp32"
    images = {k: summary(v) for k, v in image_rates.items()}
    texts = {k: summary(v) for k, v in text_ms.items()}
    for k in images:
        images[k]["ratio_vs_torch"] = images[k]["median"] / images[ref]["median"]
        texts[k]["ratio_vs_torch"] = texts[ref]["median"] / texts[k]["median"]
    return {
        "arch": arch,
        "dim": ours["fp32"].dim,
        "image_size": size,
        "context_length": ours["fp32"].bundle.context_length,
        "size_mb": {"fp32": size_mb(fp32), "int8": size_mb(int8)},
        "image_per_s_batch8": images,
        "text_ms_batch1": texts,
    }


def report(result: dict[str, Any]) -> None:
    print(f"\n{result['arch']}: dim {result['dim']}, {result['image_size']} px, "
          f"context {result['context_length']}, bundle fp32 {result['size_mb']['fp32']:.0f} MB, "
          f"int8 {result['size_mb']['int8']:.0f} MB")  # fmt: skip
    print("  images/s, batch 8 (min / median, median ratio vs torch):")
    for k, v in result["image_per_s_batch8"].items():
        print(f"    {k:22s} {v['min']:6.2f} / {v['median']:6.2f}  x{v['ratio_vs_torch']:.2f}")
    print("  text query ms, batch 1 (min / median, speed-up vs torch):")
    for k, v in result["text_ms_batch1"].items():
        print(f"    {k:22s} {v['min']:6.1f} / {v['median']:6.1f}  x{v['ratio_vs_torch']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arch", action="append", choices=[SIGLIP_ARCH, CLIP_ARCH])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--clean", action="store_true", help="delete the cached bundles first")
    args = parser.parse_args()
    if args.clean:
        shutil.rmtree(CACHE, ignore_errors=True)
    open_clip = import_open_clip()
    load_before = os.getloadavg()
    archs = args.arch or [SIGLIP_ARCH, CLIP_ARCH]
    results = [measure(open_clip, arch, args.rounds) for arch in archs]
    load_after = os.getloadavg()
    for result in results:
        report(result)
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"({os.cpu_count()} cores, {platform.processor() or platform.machine()})")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            {"results": results, "load_average": {"before": load_before, "after": load_after},
             "cpu_count": os.cpu_count(), "rounds": args.rounds}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
