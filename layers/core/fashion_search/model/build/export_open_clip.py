"""Export an open_clip model (Marqo-FashionSigLIP, Marqo-FashionCLIP, OpenAI ViT-B/32, ...).

Everything the runtime needs comes from the model's own configuration, never from its name:
preprocessing from ``model.visual.preprocess_cfg`` (SigLIPs: squash resize, mean/std 0.5), the
context length from the text tower, and the tokenizer from ``open_clip.get_tokenizer``: OpenAI's
BPE for ``SimpleTokenizer`` models, the model's own Hugging Face tokenizer (``tokenizer.json``;
SigLIP's SentencePiece vocabulary) for ``HFTokenizer`` models, with its pad/end-of-text tokens
and open_clip's text clean-up recorded in ``tokenizer_config.json``.

``import open_clip`` needs torchvision (and timm for SigLIPs); without it this fails with a
clear ``BundleError`` and ``export_hf_clip`` (transformers) remains available for Hugging Face
CLIPs such as FashionCLIP 2.0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from fashion_search.errors import BundleError
from fashion_search.model.bundle import TEXTUAL_MODEL, TOKENIZER_CFG, VISUAL_MODEL, PreprocessConfig
from fashion_search.model.build.clip_tokenizer_files import save_tokenizer, write_clip_tokenizer
from fashion_search.model.build.export import (
    DEFAULT_OPSET,
    _normalised,
    export_onnx,
    write_bundle_json,
)
from fashion_search.model.staging import staged_bundle

# open_clip's text clean-up functions -> the runtime's names (model/tokenizer.py CLEAN_MODES).
_CLEAN_MODES = {
    "_clean_whitespace": "clip",
    "_clean_lower": "lower",
    "_clean_canonicalize": "canonicalize",
}


def import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise BundleError(
            f"open_clip cannot be imported ({exc}); install open_clip_torch with a torchvision "
            "that matches torch (and timm for SigLIP models), or export a Hugging Face CLIP "
            "with --kind hf"
        ) from exc
    return open_clip


def open_clip_model_cfg(open_clip: Any, model_name: str) -> dict[str, Any]:
    """The architecture config: built-in name, ``local-dir:DIR`` or ``hf-hub:org/repo``."""
    if model_name.startswith("local-dir:"):
        path = Path(model_name.removeprefix("local-dir:")) / "open_clip_config.json"
        raw = json.loads(path.read_text(encoding="utf-8"))
        return dict(raw.get("model_cfg") or {})
    if model_name.startswith("hf-hub:"):
        from huggingface_hub import hf_hub_download

        # create_model has just fetched it: this reads the hub cache.
        path = Path(hf_hub_download(model_name.removeprefix("hf-hub:"), "open_clip_config.json"))
        return dict(json.loads(path.read_text(encoding="utf-8")).get("model_cfg") or {})
    return dict(open_clip.get_model_config(model_name) or {})


def clean_mode(tokenizer: Any) -> str:
    """open_clip's text clean-up for this tokenizer, as the runtime names it."""
    name = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "_clean_lower")
    if name not in _CLEAN_MODES:
        raise BundleError(f"open_clip text clean-up {name!r} is not supported by the runtime")
    return _CLEAN_MODES[name]


def write_tokenizer(tokenizer: Any, dest: Path, *, context_length: int) -> None:
    """textual/tokenizer*.json for an open_clip tokenizer, or a BundleError when unsupported."""
    clean = clean_mode(tokenizer)
    hf_tok = getattr(tokenizer, "tokenizer", None)
    if hf_tok is not None:  # open_clip.HFTokenizer: SigLIP's SentencePiece and friends
        if getattr(tokenizer, "strip_sep_token", False) or getattr(tokenizer, "tokenizer_mode", ""):
            raise BundleError(
                "open_clip HFTokenizer with strip_sep_token or a tokenizer_mode is not supported"
            )
        if hf_tok.pad_token is None:
            raise BundleError(f"the model's tokenizer {type(hf_tok).__name__} has no pad token")
        # The pad token matters: SigLIP's text tower has no causal mask and pools the last
        # position, so ids are padded to the full context with the tokenizer's own pad token.
        save_tokenizer(hf_tok, dest, context_length=context_length)
    else:  # open_clip.SimpleTokenizer: OpenAI's BPE (its own vocabulary, lower-cased)
        if getattr(tokenizer, "reduction_fn", None) is not None or clean != "lower":
            raise BundleError("open_clip SimpleTokenizer with a reduction mask or a clean-up "
                              "other than 'lower' is not supported")  # fmt: skip
        write_clip_tokenizer(dest, context_length=context_length)
        clean = "clip"  # CLIPTokenizerFast lower-cases in its normaliser
    cfg_path = dest / Path(TOKENIZER_CFG).name
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["fashion_search_clean"] = clean
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@contextmanager
def mha_fast_path_disabled() -> Iterator[None]:
    """nn.MultiheadAttention's inference fast path (taken by towers without an attention mask,
    such as SigLIP's text tower) traces to ``aten::_native_multi_head_attention``, which the ONNX
    exporter cannot translate; the regular path computes the same function."""
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def export_open_clip(
    model_name: str,
    dest: Path,
    *,
    pretrained: str | None = None,
    fixed_batch: int | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """``model_name``: an open_clip name (``ViT-B-32``), ``hf-hub:org/repo`` or ``local-dir:DIR``.

    With ``pretrained=None`` and a built-in name the weights are random (tests, benchmarks).
    """
    import torch

    open_clip = import_open_clip()
    # create_model, not create_model_and_transforms: the bundle needs the preprocessing
    # *config*; torchvision's transform objects are never built.
    model = open_clip.create_model(model_name, pretrained=pretrained).eval()
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
    with staged_bundle(dest, check=False) as tmp, mha_fast_path_disabled():
        export_onnx(Visual(), torch.zeros(batch, 3, size, size), tmp / VISUAL_MODEL,
                    input_name="image", fixed_batch=fixed_batch, opset=opset)  # fmt: skip
        # The sequence axis stays fixed at the context length (no dynamic_length): towers that
        # pool the last position (SigLIP) must see the padding they were trained with, and
        # open_clip's CLIP.encode_text adds its whole positional table (no slicing).
        export_onnx(Textual(), torch.zeros(batch, context, dtype=torch.int32), tmp / TEXTUAL_MODEL,
                    input_name="text", fixed_batch=fixed_batch, opset=opset)  # fmt: skip
        config = open_clip_model_cfg(open_clip, model_name)
        config["text_cfg"] = {**(config.get("text_cfg") or {}), "context_length": context}
        with torch.no_grad():
            config["embed_dim"] = int(model.encode_text(torch.zeros(1, context).long()).shape[-1])
        write_bundle_json(tmp, config, preprocess)
        write_tokenizer(tokenizer, tmp / "textual", context_length=context)
    return dest
