"""The core Lambda layer holds the fashion_search runtime and none of the tooling.

It is built the way the deploy builds it: infra/build_lambda.py runs layers/core/Makefile's
``build-CoreLayer``, the target ``sam build`` runs. tests/infra/test_package.py runs the built
handlers on this layer end to end; here: what is in it, fast, without third-party layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from infra.build_lambda import ROOT, build_layer, load_template, read_specs

SOURCE = ROOT / "layers" / "core" / "fashion_search"
# Tooling: run on a developer's or operator's machine, never by functions/*/app.py.
TOOLING = (
    "cli",
    "demo",
    "eval",
    "train",
    "transfer",
    "model/build",
    "ingest/triggers",
    "ingest/kaggle",
    "ingest/backfill",
)


@pytest.fixture(scope="module")
def core_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built layer's ``python/`` (what Lambda puts on sys.path)."""
    layers, _ = read_specs(load_template())
    out = tmp_path_factory.mktemp("lambda-build")
    return build_layer(layers["CoreLayer"], out, target="local") / "python"


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path) -> set[str]:
    """fashion_search modules a file imports (at the top or inside functions), as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    names = {n for n in found if n == "fashion_search" or n.startswith("fashion_search.")}
    # A module's parents run too (their __init__); a `from X import name` that is not a module
    # resolves to nothing and is dropped by the caller.
    return {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}


def handler_closure() -> set[str]:
    """Every fashion_search module the Lambda handlers can import, transitively."""
    todo: set[str] = set()
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        todo |= _imported(app)
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        file = _module_file(SOURCE.parent, module)
        if module in seen or file is None:
            continue
        seen.add(module)
        todo |= _imported(file)
    return seen


def test_the_core_layer_holds_no_tooling(core_layer: Path) -> None:
    assert all((SOURCE / p / "__init__.py").is_file() for p in TOOLING)  # real package names
    assert [p for p in TOOLING if (core_layer / "fashion_search" / p).exists()] == []
    assert not list(core_layer.rglob("__pycache__"))


def test_the_core_layer_holds_every_module_the_handlers_import(core_layer: Path) -> None:
    closure = handler_closure()
    assert {"fashion_search.api.app", "fashion_search.ingest.pipeline"} <= closure
    assert {"fashion_search.stores.aws.dynamodb_catalog", "fashion_search.model.loader"} <= closure
    assert sorted(m for m in closure if _module_file(core_layer, m) is None) == []
    # ...and the handlers never reach the tooling (else leaving it out would break them).
    tooling = {"fashion_search." + p.replace("/", ".") for p in TOOLING}
    assert sorted(m for m in closure if any(m.startswith(t) for t in tooling)) == []


def test_tooling_cannot_be_imported_from_the_layer(core_layer: Path) -> None:
    """In an interpreter that sees only the layer, the runtime imports and the CLI does not."""
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; import fashion_search.errors\n"
        "import fashion_search.cli"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code, str(core_layer)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "No module named 'fashion_search.cli'" in proc.stderr, proc.stderr
