"""The runtime (what Lambda imports) works with torch, transformers and open_clip unavailable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = ("torch", "transformers", "open_clip", "torchvision")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())

    import io
    from PIL import Image
    import fashion_search.images
    import fashion_search.model.bundle, fashion_search.model.preprocess
    import fashion_search.model.tokenizer, fashion_search.model.session
    import fashion_search.model.info, fashion_search.model.build.pull, fashion_search.model.loader
    import fashion_search.cli.embed, fashion_search.cli.model
    from fashion_search.model.embedder import OnnxClipEmbedder

    embedder = OnnxClipEmbedder.from_bundle(sys.argv[1], intra_op_threads=1)
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buf, format="JPEG")
    assert embedder.embed_images([buf.getvalue()]).errors == {}
    assert embedder.embed_texts(["ok"]).shape == (1, embedder.dim)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("runtime ok")
    """
)


def test_runtime_needs_no_torch(tiny_bundle: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runtime ok" in result.stdout
