"""``make demo`` on a fresh clone says what it installs (issue 13: 90 s of silence before).

Read with ``make -n`` (prints the recipes, runs nothing) in a copy holding only the Makefile and
pyproject.toml, so the dry run sees a clone without a virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")


def _dry_run(target: str, tmp_path: Path) -> list[str]:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    # Under `make test` this runs inside make: drop the parent's make variables so the dry run
    # reads like a user's (no "make[1]: Entering directory" lines, no inherited flags).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(
        [str(MAKE), "--no-print-directory", "-n", target],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout.splitlines()


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["demo", "test"])
def test_each_install_step_is_announced_and_the_long_ones_are_not_quiet(
    target: str, tmp_path: Path
) -> None:
    lines = _dry_run(target, tmp_path)
    installs = [i for i, line in enumerate(lines) if " install " in line and "pip" in line]
    assert installs, lines
    for i in installs:
        assert any(line.startswith("echo ") for line in lines[:i]), f"unannounced: {lines[i]}"
        if " -e " in lines[i] or "torch==" in lines[i]:  # the long steps show pip's progress
            assert "--quiet" not in lines[i], lines[i]
    assert lines[-1] in (".venv/bin/fashion-search demo", ".venv/bin/pytest")


def test_the_quick_start_is_still_make_demo_and_make_test() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("```", readme.index("Quick start"))
    block = readme[start : readme.index("```", start + 3)]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
