"""A truncated index segment: ``serve`` and ``reconcile`` stop with a message naming
``reindex`` (no traceback), and ``reindex`` repairs the index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fashion_search.cli import main

from tests.fixtures.ingest import jpeg_bytes
from tests.integration.test_ingest_cli import home  # noqa: F401 - the fixture

DIM_BYTES = 4


def _ingest_three(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        (src / f"p{i}.jpg").write_bytes(jpeg_bytes(i))
    main(["ingest", str(src)])
    capsys.readouterr()


def _truncate(data: Path) -> None:
    (segment,) = (data / "index").glob("ns-*.f32")
    os.truncate(segment, segment.stat().st_size // 3)


def test_reconcile_names_the_damage_and_reindex_repairs_it(
    home: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ingest_three(tmp_path, capsys)
    _truncate(home)

    with pytest.raises(SystemExit) as exit_info:
        main(["reconcile", "--dry-run"])
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "damaged" in err and "fashion-search reindex" in err and "Traceback" not in err

    main(["reindex"])
    capsys.readouterr()
    main(["reconcile", "--dry-run"])
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report["vectors"] == report["indexed"] == 3
    assert report["orphan_vectors"]["count"] == report["missing_vectors"]["count"] == 0


def test_serve_exits_non_zero_with_the_message(
    home: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ingest_three(tmp_path, capsys)
    _truncate(home)
    env = dict(os.environ, FASHION_SEARCH_API__AUTH_DISABLED="true")
    done = subprocess.run(
        [sys.executable, "-m", "fashion_search.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "fashion-search reindex" in done.stderr and "ns-0-0.f32" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
