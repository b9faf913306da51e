"""A small BPE tokenizer trained on the catalog's own words, saved in the bundle's files.

A CLIP's 49k-token BPE would make the token table bigger than the whole demo model; a few
hundred merges learned from display names and tags cover the vocabulary, and the full
single-character alphabet keeps unseen words (a user's catalog) tokenizable.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from fashion_search.errors import BundleError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 512) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=list(string.ascii_lowercase + string.digits + string.punctuation),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, bos), (EOS, eos)]
    )
    return tok


def configure(tok: Tokenizer, *, context_length: int) -> Tokenizer:
    """Pad/truncate like the runtime embedder does (the end-of-text token is kept)."""
    tok.enable_padding(pad_id=tok.token_to_id(PAD), pad_token=PAD, length=context_length)
    tok.enable_truncation(max_length=context_length)
    return tok


def encode(tok: Tokenizer, texts: list[str], *, context_length: int) -> list[list[int]]:
    eos, pad = special_id(tok, EOS), special_id(tok, PAD)
    out = []
    for enc in tok.encode_batch(texts):
        ids = [i for i in enc.ids if i != pad]
        if len(ids) > context_length:
            ids = ids[: context_length - 1] + [eos]
        out.append(ids + [pad] * (context_length - len(ids)))
    return out


def special_id(tok: Tokenizer, token: str) -> int:
    found = tok.token_to_id(token)
    if found is None:
        raise BundleError(f"the tokenizer has no {token!r} token")
    return int(found)


def save(tok: Tokenizer, textual_dir: Path, *, context_length: int) -> None:
    textual_dir.mkdir(parents=True, exist_ok=True)
    tok.no_padding()
    tok.no_truncation()
    tok.save(str(textual_dir / "tokenizer.json"))
    config = {
        "pad_token": PAD,
        "unk_token": UNK,
        "bos_token": BOS,
        "eos_token": EOS,
        "model_max_length": context_length,
        "do_lower_case": True,
    }
    (textual_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"pad_token": PAD, "unk_token": UNK, "bos_token": BOS, "eos_token": EOS}
    (textual_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def load(textual_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(textual_dir / "tokenizer.json"))
