"""Export a CLIP (Hugging Face transformers or open_clip) to an immich-layout bundle.

Needs the export extra (torch, transformers, onnx); imported lazily so the runtime never loads
torch. Our bundles have a dynamic batch axis (immich's are fixed to 1) and a text tower with a
dynamic sequence axis (immich's are fixed to 77), so short queries run at their own length:
CLIP pools at the end-of-text token, wherever it is, and its attention is causal, so the cut
padding never changed the embedding. Each tower returns L2-normalised embeddings, and the text
tower takes int32 ids as immich's does.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fashion_search.errors import BundleError
from fashion_search.model.bundle import (
    CONFIG,
    PREPROCESS_CFG,
    TEXTUAL_MODEL,
    VISUAL_MODEL,
    PreprocessConfig,
)
from fashion_search.model.build.clip_tokenizer_files import save_tokenizer, write_clip_tokenizer
from fashion_search.model.staging import staged_bundle

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box"}
DEFAULT_OPSET = 17


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    input_name: str,
    fixed_batch: int | None = None,
    dynamic_length: bool = False,
    opset: int = DEFAULT_OPSET,
) -> None:
    """One tower to ONNX: ``input_name`` -> ``embedding``; batch axis dynamic unless fixed,
    and with ``dynamic_length`` the input's axis 1 (the text's tokens) too."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    inputs: dict[int, str] = {} if fixed_batch else {0: "batch"}
    if dynamic_length:
        inputs[1] = "sequence"
    dynamic: dict[str, dict[int, str]] | None = {input_name: inputs} if inputs else None
    if dynamic is not None and not fixed_batch:
        dynamic["embedding"] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated and transformers' tracing warns about Python
        # branches on shapes (constant here: the image size and context length are fixed).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=[input_name],
            output_names=["embedding"],
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )


def _normalised(x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return out


def _hf_towers(model: Any) -> tuple[torch.nn.Module, torch.nn.Module]:
    import torch

    class Visual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            out = self.model.get_image_features(pixel_values=image)
            return _normalised(getattr(out, "pooler_output", out))

    class Textual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            out = self.model.get_text_features(input_ids=text.long())
            return _normalised(getattr(out, "pooler_output", out))

    return Visual(), Textual()


def hf_preprocess_cfg(source: Path | None, image_size: int) -> PreprocessConfig:
    """From preprocessor_config.json when the source has one, else OpenAI CLIP's defaults."""
    raw: dict[str, Any] = {}
    if source is not None and (source / "preprocessor_config.json").is_file():
        raw = json.loads((source / "preprocessor_config.json").read_text())
    mean = raw.get("image_mean", OPENAI_MEAN)
    std = raw.get("image_std", OPENAI_STD)
    resample = _PIL_RESAMPLE.get(int(raw.get("resample", 3)), "bicubic")
    return PreprocessConfig(
        size=image_size,
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        interpolation=resample,  # type: ignore[arg-type]
        resize_mode="shortest" if raw.get("do_center_crop", True) else "squash",
    )


def export_hf_clip(
    source: str | Path | Any,
    dest: Path,
    *,
    fixed_batch: int | None = None,
    dynamic_length: bool = True,
    opset: int = DEFAULT_OPSET,
    local_files_only: bool = False,
) -> Path:
    """A transformers ``CLIPModel`` (an instance, a local directory or a Hub id) -> bundle.

    ``dynamic_length=False`` fixes the text graph at the context length, as immich's are."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    source_dir: Path | None = None
    tokenizer: Any = None
    model: Any
    if isinstance(source, str | Path):
        source_dir = Path(source) if Path(source).is_dir() else None
        try:
            model = CLIPModel.from_pretrained(str(source), local_files_only=local_files_only)
        except (OSError, ValueError) as exc:
            raise BundleError(f"cannot load a Hugging Face CLIP from {source}: {exc}") from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(source), local_files_only=local_files_only
            )
        except (OSError, ValueError):
            tokenizer = None
        # transformers 5 builds an *empty* CLIPTokenizer when the source has no vocabulary.
        if tokenizer is not None and len(tokenizer) < 256:
            tokenizer = None
        if tokenizer is None:
            log.info("no usable tokenizer in %s: writing OpenAI CLIP's", source)
    else:
        model = source
    model.eval()
    vcfg, tcfg = model.config.vision_config, model.config.text_config
    size, context = int(vcfg.image_size), int(tcfg.max_position_embeddings)
    visual, textual = _hf_towers(model)
    batch = fixed_batch or 2
    with staged_bundle(dest, check=False) as tmp:
        export_onnx(visual, torch.zeros(batch, 3, size, size), tmp / VISUAL_MODEL,
                    input_name="image", fixed_batch=fixed_batch, opset=opset)  # fmt: skip
        ids = torch.zeros(batch, context, dtype=torch.int32)
        export_onnx(textual, ids, tmp / TEXTUAL_MODEL, input_name="text",
                    fixed_batch=fixed_batch, dynamic_length=dynamic_length,
                    opset=opset)  # fmt: skip
        config = {
            "embed_dim": int(model.config.projection_dim),
            "vision_cfg": {"image_size": size, "patch_size": int(vcfg.patch_size),
                           "width": int(vcfg.hidden_size), "layers": int(vcfg.num_hidden_layers)},
            "text_cfg": {"context_length": context, "vocab_size": int(tcfg.vocab_size),
                         "width": int(tcfg.hidden_size), "layers": int(tcfg.num_hidden_layers)},
        }  # fmt: skip
        write_bundle_json(tmp, config, hf_preprocess_cfg(source_dir, size))
        if tokenizer is not None and getattr(tokenizer, "is_fast", False):
            save_tokenizer(tokenizer, tmp / "textual", context_length=context)
        else:
            write_clip_tokenizer(tmp / "textual", context_length=context)
    return dest


def write_bundle_json(root: Path, config: dict[str, Any], preprocess: PreprocessConfig) -> None:
    (root / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (root / PREPROCESS_CFG).parent.mkdir(parents=True, exist_ok=True)
    (root / PREPROCESS_CFG).write_text(json.dumps(preprocess.to_json(), indent=2) + "\n")
