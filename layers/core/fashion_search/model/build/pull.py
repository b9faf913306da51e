"""Get a ready immich-layout bundle from the Hugging Face Hub (``fashion-search model pull``)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from fashion_search.errors import BundleError
from fashion_search.model.staging import staged_bundle

log = logging.getLogger(__name__)

# Only what the runtime reads: immich repositories also hold ARM NN / RKNN / fp16 variants.
BUNDLE_PATTERNS = [
    "config.json",
    "visual/model.onnx",
    "visual/model.onnx_data",
    "visual/model.onnx.data",
    "visual/preprocess_cfg.json",
    "textual/model.onnx",
    "textual/model.onnx_data",
    "textual/model.onnx.data",
    "textual/*.json",
    "textual/*.txt",
]


def default_destination(repo: str, *, models_dir: Path = Path("models")) -> Path:
    """``immich-app/ViT-B-32__openai`` -> ``models/ViT-B-32__openai``."""
    return models_dir / repo.rstrip("/").split("/")[-1]


def pull_bundle(
    repo: str,
    dest: Path,
    *,
    revision: str | None = None,
    cache_dir: Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """Download (or copy from a local directory) a bundle to ``dest`` and check that it loads."""
    if Path(repo).is_dir():
        source = Path(repo)
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            source = Path(
                snapshot_download(
                    repo_id=repo,
                    revision=revision,
                    cache_dir=str(cache_dir) if cache_dir else None,
                    allow_patterns=BUNDLE_PATTERNS,
                    local_files_only=local_files_only,
                )
            )
        except LocalEntryNotFoundError as exc:
            raise BundleError(
                f"{repo} is not in the local Hugging Face cache and downloads are off: {exc}"
            ) from exc
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise BundleError(f"cannot download {repo} from the Hugging Face Hub: {exc}") from exc
    with staged_bundle(dest) as tmp:
        copied = 0
        for pattern in BUNDLE_PATTERNS:
            for file in source.glob(pattern):
                target = tmp / file.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file.resolve(), target)  # the hub cache holds symlinks to blobs
                copied += 1
        log.info("copied %d files from %s", copied, source)
    return dest
