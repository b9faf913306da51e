"""Write a trained TinyClip as an immich-layout bundle, and read one back for fine-tuning.

Besides the runtime files the bundle keeps ``train/checkpoint.safetensors`` (fp16 weights, a few
MB) and the network's hyper-parameters in ``config.json`` so that ``model train --init`` can
continue from it. ONNX graphs stay fp32: they are small and fp16 would cost accuracy on CPU.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from fashion_search.errors import BundleError
from fashion_search.model.staging import staged_bundle
from fashion_search.train import tokenizer as toks
from fashion_search.train.data import MEAN, STD
from fashion_search.train.model import TinyClip, TinyClipConfig

ARCHITECTURE = "fashion-search/tiny-clip-v1"
CHECKPOINT = "train/checkpoint.safetensors"
ONNX_OPSET = 17


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated but exact for these plain graphs (and fast);
        # the tracer warns about Python ints in reshapes, which are fixed per export anyway.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=["embedding"],
            dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def write_bundle(
    model: TinyClip, tok: Tokenizer, out: Path, *, info: dict[str, Any] | None = None
) -> Path:
    """Write ``out/`` atomically: into a temporary sibling first, then renamed."""
    cfg = model.cfg
    model = model.eval()
    with staged_bundle(out, check=False) as tmp:
        _export(
            model.visual,
            torch.zeros(1, 3, cfg.image_size, cfg.image_size),
            tmp / "visual/model.onnx",
            "image",
        )
        text = torch.full((1, cfg.context_length), cfg.pad_id, dtype=torch.int32)
        _export(model.textual, text, tmp / "textual/model.onnx", "text")
        preprocess = {
            "size": [cfg.image_size, cfg.image_size],
            "mode": "RGB",
            "mean": list(MEAN),
            "std": list(STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
            "fill_color": 0,
        }
        (tmp / "visual/preprocess_cfg.json").write_text(json.dumps(preprocess, indent=2) + "\n")
        toks.save(tok, tmp / "textual", context_length=cfg.context_length)
        config = {
            "embed_dim": cfg.embed_dim,
            "vision_cfg": {"image_size": cfg.image_size, "layers": len(cfg.channels) * 2},
            "text_cfg": {
                "context_length": cfg.context_length,
                "vocab_size": cfg.vocab_size,
                "width": cfg.text_width,
                "layers": cfg.text_layers,
            },
            "fashion_search": {
                "architecture": ARCHITECTURE,
                "tiny_clip": cfg.to_json(),
                **(info or {}),
            },
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "train").mkdir()
        weights = model.state_dict()
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in weights.items()
                 if v.is_floating_point()}  # fmt: skip
        state.update({k: v for k, v in weights.items() if not v.is_floating_point()})
        save_file(state, str(tmp / CHECKPOINT))
        (tmp / CHECKPOINT).chmod(0o644)  # safetensors writes 0600; the bundle is committed
    return out


def load_for_finetune(bundle: Path) -> tuple[TinyClip, Tokenizer]:
    """The network and tokenizer of a bundle written by ``write_bundle``."""
    config_path = bundle / "config.json"
    if not config_path.is_file():
        raise BundleError(f"model bundle not found: {config_path} is missing", field="init")
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    meta = raw.get("fashion_search") or {}
    if meta.get("architecture") != ARCHITECTURE or not (bundle / CHECKPOINT).is_file():
        raise BundleError(
            f"{bundle} cannot be fine-tuned: only bundles written by `fashion-search model train` "
            f"carry the training checkpoint ({CHECKPOINT}); ONNX-only bundles (immich) cannot",
            field="init",
        )
    model = TinyClip(TinyClipConfig.from_json(meta["tiny_clip"]))
    state = {
        k: v.float() if v.is_floating_point() else v
        for k, v in load_file(str(bundle / CHECKPOINT)).items()
    }
    model.load_state_dict(state)
    return model, toks.load(bundle / "textual")
