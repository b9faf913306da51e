"""Text -> token ids for the text tower, with the ``tokenizers`` library (no torch).

The vocabulary is the bundle's ``tokenizer.json``: OpenAI CLIP's BPE, or a SentencePiece
(Unigram) vocabulary such as SigLIP's. For CLIP this matches open_clip's ``SimpleTokenizer``:
the same text clean-up before BPE (HTML entities, ftfy's default character fixes, whitespace),
``<start>`` + tokens + ``<end>``, truncated to the context length keeping the end-of-text token,
then padded with the bundle's pad token (OpenAI pads with 0; its text tower pools at the first
end-of-text token, so the pad id does not change the embedding). For SigLIP it matches open_clip's
``HFTokenizer``: "canonicalize" clean-up, the vocabulary's own ``</s>`` appended, padded to the
full context with the pad token ``</s>`` (its tower pools the last position: padding matters).
"""

from __future__ import annotations

import html
import re
import string
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from fashion_search.errors import BundleError
from fashion_search.model.bundle import Bundle

# What ftfy.fix_text (which OpenAI's tokenizer runs) changes in text that is not mojibake:
# curly quotes, Latin ligatures and full-width characters. Mojibake repair is not attempted.
_QUOTES: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u02bc": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
    }
)
_LIGATURES: Final = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
     "\ufb05": "st", "\ufb06": "st", "\u0132": "IJ", "\u0133": "ij", "\u0149": "\u02bcn",
     "\u01c4": "D\u017d", "\u01c5": "D\u017e", "\u01c6": "d\u017e", "\u01c7": "LJ",
     "\u01c8": "Lj", "\u01c9": "lj", "\u01ca": "NJ", "\u01cb": "Nj", "\u01cc": "nj"}
)  # fmt: skip
_WIDE: Final = re.compile("[\u3000\uff01-\uff5e\uffe0-\uffee]")
_CONTROL: Final = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\ufeff]")
_SPACES: Final = re.compile(r"\s+")
CLEAN_MODES: Final = ("clip", "lower", "canonicalize", "none")
_PUNCTUATION: Final = str.maketrans("", "", string.punctuation)


def clean_text(text: str) -> str:
    """OpenAI CLIP's ``basic_clean`` + ``whitespace_clean`` without the ftfy dependency."""
    text = _CONTROL.sub("", text)
    text = text.translate(_LIGATURES).translate(_QUOTES)
    text = _WIDE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    text = unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text))
    return _SPACES.sub(" ", text).strip()


def canonicalize_text(text: str) -> str:
    """open_clip's SigLIP clean-up: no punctuation, lower case, single spaces."""
    text = clean_text(text).replace("_", " ").translate(_PUNCTUATION).lower()
    return " ".join(text.split())


class ClipTokenizer:
    """Fixed-length int32 token ids: [B, context_length]."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        context_length: int,
        pad_id: int,
        eot_id: int | None,
        clean: str = "clip",
    ) -> None:
        if clean not in CLEAN_MODES:
            raise BundleError(f"unknown text clean-up {clean!r}; expected one of {CLEAN_MODES}")
        if context_length < 2:
            raise BundleError(f"context length must be at least 2, got {context_length}")
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.no_truncation()
        self.context_length = context_length
        self.pad_id = pad_id
        self.eot_id = eot_id
        self._clean = clean

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> ClipTokenizer:
        return cls.from_files(
            bundle.tokenizer_file,
            context_length=bundle.context_length,
            pad_token=bundle.special_token("pad_token"),
            eos_token=bundle.special_token("eos_token"),
            # Bundles exported from open_clip record its text clean-up here ("canonicalize" for
            # SigLIPs: no punctuation, lower case); others get OpenAI CLIP's.
            clean=str(bundle.tokenizer_cfg.get("fashion_search_clean", "clip")),
        )

    @classmethod
    def from_files(
        cls,
        tokenizer_json: Path,
        *,
        context_length: int,
        pad_token: str | None,
        eos_token: str | None,
        clean: str = "clip",
    ) -> ClipTokenizer:
        try:
            tok = Tokenizer.from_file(str(tokenizer_json))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise BundleError(f"cannot load tokenizer {tokenizer_json}: {exc}") from exc
        eot_id = tok.token_to_id(eos_token) if eos_token else None
        if pad_token is None:
            # No pad token configured: pad with end-of-text (what HF CLIP does).
            if eot_id is None:
                raise BundleError(
                    f"{tokenizer_json.parent}: tokenizer_config.json names no pad_token"
                )
            pad_id = eot_id
        else:
            found = tok.token_to_id(pad_token)
            if found is None:
                raise BundleError(f"pad token {pad_token!r} is not in {tokenizer_json}")
            pad_id = found
        return cls(tok, context_length=context_length, pad_id=pad_id, eot_id=eot_id, clean=clean)

    def token_ids(self, text: str) -> list[int]:
        """Ids with special tokens, truncated to the context length (no padding)."""
        if self._clean == "canonicalize":
            text = canonicalize_text(text)
        elif self._clean == "lower":  # open_clip's "lower", for case-sensitive vocabularies
            text = clean_text(text).lower()
        elif self._clean != "none":
            text = clean_text(text)
        ids: list[int] = self._tok.encode(text).ids
        if len(ids) > self.context_length:
            last = ids[-1]
            # Keep the closing end-of-text token: the text tower pools at it.
            keep_last = self.eot_id is not None and last == self.eot_id
            ids = (
                ids[: self.context_length - 1] + [last] if keep_last else ids[: self.context_length]
            )
        return ids

    def __call__(self, texts: Sequence[str]) -> NDArray[np.int32]:
        out = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int32)
        for i, text in enumerate(texts):
            ids = self.token_ids(text)
            out[i, : len(ids)] = ids
        return out
