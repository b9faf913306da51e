"""An immich-layout model bundle on disk: which files, and what their JSON says.

```
BUNDLE/config.json                 open_clip config: embed_dim, text_cfg.context_length, ...
BUNDLE/visual/model.onnx           "image" float32 [B,3,S,S] -> "embedding" [B,D]
BUNDLE/visual/preprocess_cfg.json  size, mean, std, interpolation, resize_mode, fill_color
BUNDLE/textual/model.onnx          "text" int32 [B,L] -> "embedding" [B,D]
BUNDLE/textual/tokenizer.json      + tokenizer_config.json (pad_token), special_tokens_map.json
```

Everything about a model comes from these files; nothing here is hard-coded per model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal, cast

from fashion_search.errors import BundleError

ResizeMode = Literal["shortest", "squash", "longest"]
Interpolation = Literal["bicubic", "bilinear", "nearest", "lanczos", "box"]
RESIZE_MODES: Final[tuple[str, ...]] = ("shortest", "squash", "longest")
INTERPOLATIONS: Final[tuple[str, ...]] = ("bicubic", "bilinear", "nearest", "lanczos", "box")

CONFIG: Final = "config.json"
VISUAL_MODEL: Final = "visual/model.onnx"
PREPROCESS_CFG: Final = "visual/preprocess_cfg.json"
TEXTUAL_MODEL: Final = "textual/model.onnx"
TOKENIZER: Final = "textual/tokenizer.json"
TOKENIZER_CFG: Final = "textual/tokenizer_config.json"
SPECIAL_TOKENS: Final = "textual/special_tokens_map.json"
REQUIRED_FILES: Final[tuple[str, ...]] = (
    CONFIG,
    VISUAL_MODEL,
    PREPROCESS_CFG,
    TEXTUAL_MODEL,
    TOKENIZER,
    TOKENIZER_CFG,
)


@dataclass(frozen=True, slots=True)
class PreprocessConfig:
    """How a picture becomes the image tower's input (open_clip's PreprocessCfg)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Interpolation = "bicubic"
    resize_mode: ResizeMode = "shortest"
    fill_color: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, where: str = PREPROCESS_CFG) -> PreprocessConfig:
        try:
            size = raw["size"]
            if isinstance(size, list | tuple):
                if len(size) != 2 or size[0] != size[1]:
                    raise BundleError(f"{where}: only square sizes are supported, got {size}")
                size = size[0]
            mode = raw.get("mode", "RGB")
            if mode != "RGB":
                raise BundleError(f"{where}: mode {mode!r} is not supported (only RGB)")
            interpolation = raw.get("interpolation", "bicubic")
            if interpolation not in INTERPOLATIONS:
                raise BundleError(
                    f"{where}: interpolation {interpolation!r} is not one of {INTERPOLATIONS}"
                )
            resize_mode = raw.get("resize_mode", "shortest")
            if resize_mode not in RESIZE_MODES:
                raise BundleError(
                    f"{where}: resize_mode {resize_mode!r} is not one of {RESIZE_MODES}"
                )
            fill = raw.get("fill_color", 0)
            fill_rgb = (fill, fill, fill) if isinstance(fill, int | float) else tuple(fill)
            return cls(
                size=int(size),
                mean=_triple(raw["mean"], "mean", where),
                std=_triple(raw["std"], "std", where),
                interpolation=cast(Interpolation, interpolation),
                resize_mode=cast(ResizeMode, resize_mode),
                fill_color=cast(tuple[int, int, int], tuple(int(c) for c in fill_rgb)),
            )
        except KeyError as exc:
            raise BundleError(f"{where}: missing key {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: malformed value: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "size": [self.size, self.size],
            "mode": "RGB",
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
            "fill_color": self.fill_color[0]
            if len(set(self.fill_color)) == 1
            else list(self.fill_color),
        }


def _triple(value: Any, name: str, where: str) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        return (float(value), float(value), float(value))
    values = tuple(float(v) for v in value)
    if len(values) != 3:
        raise BundleError(f"{where}: {name} needs 3 values (RGB), got {len(values)}")
    if name == "std" and any(v <= 0 for v in values):
        raise BundleError(f"{where}: std values must be positive, got {values}")
    return values[0], values[1], values[2]


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"bundle file missing: {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle file is not valid JSON: {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"bundle file must hold a JSON object: {path}")
    return data


@dataclass(frozen=True)
class Bundle:
    """A bundle directory whose files exist and whose JSON parses (ONNX graphs not opened yet)."""

    path: Path
    model_cfg: dict[str, Any]
    preprocess: PreprocessConfig
    tokenizer_cfg: dict[str, Any]
    special_tokens: dict[str, Any]

    @classmethod
    def open(cls, path: Path | str) -> Bundle:
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"model bundle not found: {root} is not a directory")
        missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
        if missing:
            raise BundleError(f"model bundle {root} is missing: {', '.join(missing)}")
        model_cfg = read_json(root / CONFIG)
        special = root / SPECIAL_TOKENS
        return cls(
            path=root,
            model_cfg=model_cfg,
            preprocess=PreprocessConfig.from_json(read_json(root / PREPROCESS_CFG)),
            tokenizer_cfg=read_json(root / TOKENIZER_CFG),
            special_tokens=read_json(special) if special.is_file() else {},
        )

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def embed_dim(self) -> int | None:
        value = self.model_cfg.get("embed_dim")
        return int(value) if value is not None else None

    @property
    def image_size(self) -> int:
        return self.preprocess.size

    @property
    def context_length(self) -> int:
        text_cfg = self.model_cfg.get("text_cfg") or {}
        return int(text_cfg.get("context_length", 77))

    @property
    def visual_model(self) -> Path:
        return self.path / VISUAL_MODEL

    @property
    def textual_model(self) -> Path:
        return self.path / TEXTUAL_MODEL

    @property
    def tokenizer_file(self) -> Path:
        return self.path / TOKENIZER

    def special_token(self, name: str) -> str | None:
        """A special token's text from tokenizer_config.json, else special_tokens_map.json.

        Values are either a string or a serialised AddedToken ``{"content": ...}``.
        """
        for source in (self.tokenizer_cfg, self.special_tokens):
            value = source.get(name)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                return value
        return None

    @cached_property
    def content_hash(self) -> str:
        """sha256 over every file that defines the model's behaviour (12 hex digits)."""
        digest = hashlib.sha256()
        for name in (*REQUIRED_FILES, SPECIAL_TOKENS):
            file = self.path / name
            if not file.is_file():
                continue
            digest.update(name.encode())
            with file.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()[:12]

    @property
    def model_id(self) -> str:
        return f"{self.name}-{self.content_hash}"
