"""Build a bundle directory next to its destination, then swap it into place in one rename.

Readers (a running API, a Lambda's cache check) thus see the old bundle or the complete new one,
never half of one, and a failed build leaves the destination as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fashion_search.model.info import inspect_bundle


@contextmanager
def staged_bundle(dest: Path, *, check: bool = True) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``dest`` to write the bundle into.

    When the block ends without an error the directory is made world-readable, checked with
    ``inspect_bundle`` (both towers load and agree; ``BundleError`` otherwise) when ``check``,
    and renamed to ``dest``, replacing what was there. On any error it is removed instead.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A sibling, so the final os.replace is a rename within one filesystem.
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes 0700; a bundle is read by other users too
        if check:
            inspect_bundle(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
