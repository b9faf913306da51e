"""Write OpenAI CLIP's tokenizer as Hugging Face ``tokenizers`` files, offline.

The BPE vocabulary is open_clip's ``bpe_simple_vocab_16e6.txt.gz`` (shipped inside the
open_clip_torch wheel, found without importing open_clip, which needs torchvision), so the token
ids are OpenAI's. Needs ``transformers`` (the export extra) to serialise the tokenizer.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from fashion_search.errors import BundleError

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"


def open_clip_bpe_path() -> Path:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise BundleError("open_clip_torch is not installed: it ships the CLIP BPE vocabulary")
    path = Path(next(iter(spec.submodule_search_locations))) / VOCAB_FILE
    if not path.is_file():
        raise BundleError(f"CLIP BPE vocabulary not found at {path}")
    return path


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


@lru_cache(maxsize=1)
def clip_vocab_and_merges(bpe_path: Path | None = None) -> tuple[dict[str, int], list[str]]:
    """The 49,408-token vocabulary and 48,894 merges, in OpenAI's id order."""
    lines = gzip.open(bpe_path or open_clip_bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    tokens = list(bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [SOT, EOT]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_clip_tokenizer(dest: Path, *, context_length: int = 77) -> None:
    """tokenizer.json, tokenizer_config.json, special_tokens_map.json (as immich bundles have)."""
    from transformers import CLIPTokenizerFast  # type: ignore[attr-defined]

    vocab, merges = clip_vocab_and_merges()
    tok = CLIPTokenizerFast(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges])
    tok.model_max_length = context_length
    save_tokenizer(tok, dest, context_length=context_length)


def save_tokenizer(tok: Any, dest: Path, *, context_length: int) -> None:
    """Save a transformers fast tokenizer in the bundle's textual/ layout."""
    dest.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(dest))
    if not (dest / "tokenizer.json").is_file():
        raise BundleError(
            f"{type(tok).__name__} did not write tokenizer.json (not a fast tokenizer)"
        )
    cfg_path = dest / "tokenizer_config.json"
    cfg: dict[str, Any] = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg["model_max_length"] = context_length
    special = {
        k: getattr(tok, k)
        for k in ("bos_token", "eos_token", "unk_token", "pad_token")
        if getattr(tok, k, None) is not None
    }
    for key, value in special.items():
        cfg.setdefault(key, str(value))
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    special_map = {k: str(v) for k, v in special.items()}
    (dest / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
