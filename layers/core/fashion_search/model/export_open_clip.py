"""Export an open_clip model (OpenAI ViT-B/32, Marqo-FashionSigLIP, ...) to the bundle layout.

``import open_clip`` needs torchvision; without it this fails with a clear ``BundleError`` and
``export_hf_clip`` (transformers) remains available for Hugging Face CLIPs such as FashionCLIP.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from fashion_search.errors import BundleError
from fashion_search.model.bundle import TEXTUAL_MODEL, TOKENIZER_CFG, VISUAL_MODEL, PreprocessConfig
from fashion_search.model.clip_tokenizer_files import save_tokenizer, write_clip_tokenizer
from fashion_search.model.export import (
    DEFAULT_OPSET,
    _normalised,
    export_onnx,
    write_bundle_json,
)
from fashion_search.model.staging import staged_bundle


def import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise BundleError(
            f"open_clip cannot be imported ({exc}); install open_clip_torch with a torchvision "
            "that matches torch, or export a Hugging Face CLIP with --kind hf"
        ) from exc
    return open_clip


def export_open_clip(
    model_name: str,
    dest: Path,
    *,
    pretrained: str | None = None,
    fixed_batch: int | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """``model_name`` is an open_clip name (``ViT-B-32``) or ``hf-hub:org/repo``."""
    import torch

    open_clip = import_open_clip()
    model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    found: Any = getattr(model.visual, "preprocess_cfg", None) or {}
    raw_pp: dict[str, Any] = (
        asdict(found) if is_dataclass(found) and not isinstance(found, type) else dict(found)
    )
    preprocess = PreprocessConfig.from_json(raw_pp, where=f"open_clip {model_name}")
    size = preprocess.size
    context = int(getattr(model, "context_length", None) or tokenizer.context_length)

    class Visual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return _normalised(self.model.encode_image(image))

    class Textual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            return _normalised(self.model.encode_text(text.long()))

    batch = fixed_batch or 2
    with staged_bundle(dest, check=False) as tmp:
        export_onnx(Visual(), torch.zeros(batch, 3, size, size), tmp / VISUAL_MODEL,
                    input_name="image", fixed_batch=fixed_batch, opset=opset)  # fmt: skip
        export_onnx(Textual(), torch.zeros(batch, context, dtype=torch.int32), tmp / TEXTUAL_MODEL,
                    input_name="text", fixed_batch=fixed_batch, opset=opset)  # fmt: skip
        config = open_clip.get_model_config(model_name) or {}
        config = dict(config)
        config.setdefault("text_cfg", {})["context_length"] = context
        with torch.no_grad():
            config["embed_dim"] = int(model.encode_text(torch.zeros(1, context).long()).shape[-1])
        write_bundle_json(tmp, config, preprocess)
        hf_tok = getattr(tokenizer, "tokenizer", None)
        if hf_tok is not None:  # open_clip.HFTokenizer (SigLIP and friends)
            save_tokenizer(hf_tok, tmp / "textual", context_length=context)
            clean = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "")
            cfg_path = tmp / TOKENIZER_CFG
            cfg = json.loads(cfg_path.read_text())
            if "canonicalize" in clean:
                cfg["fashion_search_clean"] = "canonicalize"
            cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        else:  # SimpleTokenizer: OpenAI's BPE
            write_clip_tokenizer(tmp / "textual", context_length=context)
    return dest
