"""``OnnxClipEmbedder``: the one place images and texts become CLIP embeddings.

Image batches are pipelined: a small thread pool decodes and preprocesses the next chunk while
onnxruntime (which releases the GIL) runs the current one, so the model is rarely left waiting.

Every tower run goes through one ``ModelQueue``: concurrent callers (the API's request threads)
share one run at a time, their rows grouped into one batch per tower.

Text runs at its own length where the text graph allows it: a graph whose sequence axis is
symbolic, and whose embedding does not change when the padding is cut (it pools at the
end-of-text position, as CLIP does, not at a fixed index), gets its ids cut to the next bucket
(8, 16, 32, ...) above the longest query in the batch. Whether the embedding stays the same is
checked on the graph itself when the text tower loads (``text_length``), not assumed from a name.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from fashion_search.errors import BundleError, InvalidImage, InvalidInput
from fashion_search.images import decode_image, to_rgb
from fashion_search.model.base import ImageEmbeddings
from fashion_search.model.batching import ModelQueue
from fashion_search.model.bundle import Bundle
from fashion_search.model.preprocess import normalise_into, resize_for_model
from fashion_search.model.session import Tower
from fashion_search.model.tokenizer import ClipTokenizer
from fashion_search.types import Vector

log = logging.getLogger(__name__)

DEFAULT_MAX_IMAGE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000

ImageInput = bytes | Image.Image
Prepared = NDArray[np.float32] | InvalidImage

MIN_TEXT_BUCKET = 8
# Cutting the padding must leave the probe's embeddings where they were (fp32 graphs agree to
# ~1e-6; an int8 graph's per-tensor activation scales move a little with the padding).
_CUT_MIN_COSINE = 0.9999
_PROBES = ("a photo", "red cotton summer dress with short sleeves")


def text_bucket(length: int, context_length: int) -> int:
    """The smallest of 8, 16, 32, ... that holds ``length`` tokens, capped at the context."""
    bucket = MIN_TEXT_BUCKET
    while bucket < length:
        bucket *= 2
    return min(bucket, context_length)


class OnnxClipEmbedder:
    """A CLIP model from an immich-layout bundle (implements ``model.base.Embedder``)."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        intra_op_threads: int | None = None,
        batch_size: int = 16,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        decode_workers: int | None = None,
        batch_wait_ms: float = 2.0,
        spin: bool = False,
    ) -> None:
        """``batch_wait_ms``: how long a run may wait for concurrent calls to join it, once
        calls have been seen arriving together (``model.batching.ModelQueue``); ``spin``:
        onnxruntime's threads busy-wait between parallel sections (``model.session.OrtSession``)."""
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be >= 1, got {batch_size}", field="batch_size")
        self.bundle = bundle
        self.batch_size = batch_size
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.decode_workers = (
            decode_workers if decode_workers is not None else min(4, os.cpu_count() or 1)
        )
        self.visual = Tower(
            bundle.visual_model,
            input_name="image",
            allowed_dtypes=("tensor(float)",),
            expected_shape=(None, 3, bundle.image_size, bundle.image_size),
            expected_dim=bundle.embed_dim,
            where=f"preprocess_cfg.json size {bundle.image_size}",
            intra_op_threads=intra_op_threads,
            spin=spin,
        )
        self.textual = Tower(
            bundle.textual_model,
            input_name="text",
            allowed_dtypes=("tensor(int32)", "tensor(int64)"),
            expected_shape=(None, bundle.context_length),
            expected_dim=bundle.embed_dim,
            where=f"config.json context_length {bundle.context_length}",
            intra_op_threads=intra_op_threads,
            spin=spin,
        )
        self._tokenizer: ClipTokenizer | None = None
        self._lock = threading.Lock()
        self._cut_text: bool | None = None  # decided once, by ``text_length``
        self._probe_lock = threading.Lock()
        self.queue = ModelQueue(
            {"text": self._run_text, "image": self.visual.run},
            max_rows=batch_size,
            max_wait_s=batch_wait_ms / 1000,
        )

    @classmethod
    def from_bundle(
        cls,
        path: Path | str,
        *,
        intra_op_threads: int | None = None,
        batch_size: int = 16,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        decode_workers: int | None = None,
        batch_wait_ms: float = 2.0,
        spin: bool = False,
    ) -> OnnxClipEmbedder:
        return cls(
            Bundle.open(path),
            intra_op_threads=intra_op_threads,
            batch_size=batch_size,
            max_image_bytes=max_image_bytes,
            max_image_pixels=max_image_pixels,
            decode_workers=decode_workers,
            batch_wait_ms=batch_wait_ms,
            spin=spin,
        )

    # -- identity ---------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.bundle.model_id

    @property
    def dim(self) -> int:
        configured = self.bundle.embed_dim
        if configured is not None:
            return configured
        self.visual.load()
        if self.visual.dim is None:
            raise BundleError(f"{self.bundle.path}: embedding size unknown (no embed_dim)")
        return self.visual.dim

    @property
    def image_size(self) -> int:
        """The model's input side: a caller that decodes pictures itself (the API) decodes
        JPEGs at a reduced scale that still covers it."""
        return self.bundle.image_size

    def load(self) -> None:
        """Open both sessions and the tokenizer now (cold start), checking they agree.

        Each tower also checks itself against the bundle's JSON when it loads lazily."""
        self.visual.load()
        self.textual.load()
        self.tokenizer  # noqa: B018 - loads it
        self.text_length  # noqa: B018 - probes the text graph once
        dims = {"config.json embed_dim": self.bundle.embed_dim}
        dims |= {"visual": self.visual.dim, "textual": self.textual.dim}
        known = {k: v for k, v in dims.items() if v is not None}
        if len(set(known.values())) > 1:
            raise BundleError(f"{self.bundle.path}: embedding sizes disagree: {known}")

    @property
    def tokenizer(self) -> ClipTokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = ClipTokenizer.from_bundle(self.bundle)
        return self._tokenizer

    # -- text -------------------------------------------------------------------------------

    @property
    def text_length(self) -> str:
        """``"dynamic"`` when queries run at their own length (bucketed), else ``"fixed"``."""
        if self._cut_text is None:
            with self._probe_lock:
                if self._cut_text is None:
                    self._cut_text = self._padding_can_be_cut()
        return "dynamic" if self._cut_text else "fixed"

    def _padding_can_be_cut(self) -> bool:
        """A symbolic sequence axis, and cutting the padding leaves the probes' embeddings."""
        self.textual.load()
        if not self.textual.dynamic_length:
            return False
        ids = self.tokenizer(list(_PROBES))
        cut = text_bucket(self._used_length(ids), self.bundle.context_length)
        if cut >= ids.shape[1]:
            return False
        full, short = self.textual.run(ids), self.textual.run(ids[:, :cut])
        agreement = float(np.min(np.sum(full * short, axis=1)))
        if agreement < _CUT_MIN_COSINE:
            log.warning(
                "%s: the text graph's sequence axis is dynamic but its embedding changes when "
                "the padding is cut (cosine %.5f: it pools at a fixed position, or an int8 graph "
                "quantises activations over the whole input); queries run at the full context "
                "length %d",
                self.textual.path,
                agreement,
                self.bundle.context_length,
            )
            return False
        return True

    def _used_length(self, ids: NDArray[np.generic]) -> int:
        """Tokens the longest row needs: through its first end-of-text token, else its last
        non-pad token (the whole row when it holds neither)."""
        tokenizer = self.tokenizer
        width = ids.shape[1]
        if tokenizer.eot_id is not None:
            hit = ids == tokenizer.eot_id
            ends = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, width)
        else:
            used = ids != tokenizer.pad_id
            ends = np.where(used.any(axis=1), width - used[:, ::-1].argmax(axis=1), 0)
        return int(ends.max(initial=1))

    def _run_text(self, ids: NDArray[np.generic]) -> Vector:
        """The text tower on full-context ids, cut to the batch's bucket where that is exact."""
        if self._cut_text:
            cut = text_bucket(self._used_length(ids), self.bundle.context_length)
            ids = ids[:, :cut]
        return self.textual.run(ids)

    def embed_texts(self, texts: Sequence[str]) -> Vector:
        if isinstance(texts, str):
            raise InvalidInput("embed_texts takes a list of strings, not one string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenizer(texts)
        self.text_length  # noqa: B018 - decided before the first run, outside the queue
        parts = [
            self.queue.run("text", ids[i : i + self.batch_size])
            for i in range(0, len(ids), self.batch_size)
        ]
        return np.concatenate(parts, axis=0)

    # -- images -----------------------------------------------------------------------------

    def prepare_image(self, image: ImageInput) -> NDArray[np.float32]:
        """Safe decode + preprocess of one image: float32 [3, S, S]; raises ``InvalidImage``."""
        cfg = self.bundle.preprocess
        if isinstance(image, bytes | bytearray | memoryview):
            try:
                img = decode_image(
                    bytes(image),
                    max_bytes=self.max_image_bytes,
                    max_pixels=self.max_image_pixels,
                    target_size=cfg.size,
                )
            except InvalidInput as exc:  # PayloadTooLarge too: per item it is a bad image
                if isinstance(exc, InvalidImage):
                    raise
                raise InvalidImage(exc.message) from exc
        elif isinstance(image, Image.Image):
            if image.width * image.height > self.max_image_pixels:
                raise InvalidImage(
                    f"image is {image.width}x{image.height}, over {self.max_image_pixels} pixels"
                )
            img = to_rgb(image)
        else:
            raise InvalidImage(f"expected image bytes or a PIL image, got {type(image).__name__}")
        out = np.empty((3, cfg.size, cfg.size), dtype=np.float32)
        normalise_into(resize_for_model(img, cfg), cfg, out)
        return out

    def _prepare_safe(self, image: ImageInput) -> Prepared:
        try:
            return self.prepare_image(image)
        except InvalidImage as exc:
            return exc

    def embed_image_tensors(self, batch: NDArray[np.float32]) -> Vector:
        """The bare image tower on ready [N, 3, S, S] tensors (no decode, no preprocessing)."""
        parts = [
            self.queue.run("image", batch[i : i + self.batch_size])
            for i in range(0, len(batch), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def embed_images(self, images: Sequence[ImageInput]) -> ImageEmbeddings:
        n = len(images)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        errors: dict[int, InvalidImage] = {}
        if n == 0:
            return ImageEmbeddings(vectors=vectors, errors=errors)
        starts = list(range(0, n, self.batch_size))
        workers = min(self.decode_workers, n)
        if workers <= 1:
            for start in starts:
                chunk = [self._prepare_safe(img) for img in images[start : start + self.batch_size]]
                self._run_chunk(start, chunk, vectors, errors)
            return ImageEmbeddings(vectors=vectors, errors=errors)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:

            def submit(start: int) -> list[Future[Prepared]]:
                return [
                    pool.submit(self._prepare_safe, img)
                    for img in images[start : start + self.batch_size]
                ]

            pending = submit(starts[0])
            for k, start in enumerate(starts):
                current = pending
                if k + 1 < len(starts):
                    pending = submit(starts[k + 1])  # decode ahead while this chunk runs
                self._run_chunk(start, [f.result() for f in current], vectors, errors)
        return ImageEmbeddings(vectors=vectors, errors=errors)

    def _run_chunk(
        self,
        start: int,
        prepared: list[Prepared],
        vectors: NDArray[np.float32],
        errors: dict[int, InvalidImage],
    ) -> None:
        good = [i for i, p in enumerate(prepared) if not isinstance(p, InvalidImage)]
        for i, p in enumerate(prepared):
            if isinstance(p, InvalidImage):
                errors[start + i] = p
        if good:
            batch = np.stack([prepared[i] for i in good])  # type: ignore[misc]
            vectors[[start + i for i in good]] = self.queue.run("image", batch)
