"""Build the Lambda artifacts the way ``sam build`` does, without Docker, and print their sizes.

The functions and layers are read from template.yaml, so this build cannot drift from what gets
deployed: each ``AWS::Serverless::Function`` (CodeUri, Handler, Layers) and each
``AWS::Serverless::LayerVersion`` (ContentUri, Metadata.BuildMethod).

Two targets:

``release``  what Lambda runs (python3.12, manylinux x86_64 wheels): every layer through its
             ContentUri's ``make build-<LogicalId>``, the very targets ``sam build`` runs
             (layers/deps for third-party packages, layers/core for the runtime code).
``local``    the same pinned lists for the running interpreter (copied from its environment
             where the versions match, else installed by pip), the core layer by its Makefile,
             plus a stand-in for the runtime's own boto3.
             The build-and-import test uses it.

Output mirrors ``.aws-sam/build``: ``OUT/<FunctionId>/`` holds the code, ``OUT/<LayerId>/python/``
a layer (Lambda mounts a layer at /opt and puts /opt/python on sys.path).

    python infra/build_lambda.py --target release --out build/lambda --json reports/sizes.json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python infra/build_lambda.py
    sys.path.insert(0, str(ROOT))

from infra.cfn import (  # noqa: E402
    TEMPLATE,
    BuildError,
    FunctionSpec,
    LayerSpec,
    load_template,
    read_specs,
)

__all__ = ["TEMPLATE", "BuildError", "FunctionSpec", "LayerSpec", "build", "load_template"]
__all__ += ["read_specs"]

DEPS_DIR = ROOT / "layers" / "deps"
RUNTIME_PROVIDED = DEPS_DIR / "runtime-provided.txt"
# Lambda's quota: function code plus all its layers, unzipped.
UNZIPPED_LIMIT_BYTES = 262_144_000
# A stand-in for what the python3.12 runtime provides (boto3); only the local target has it.
RUNTIME_DIR_NAME = "_lambda_runtime"
_SKIP_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache"}


# --- building -------------------------------------------------------------------------------


def read_pins(path: Path) -> list[tuple[str, str]]:
    """``name==version`` lines of a requirements file (comments and blanks ignored)."""
    pins: list[tuple[str, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise BuildError(f"{path}: '{line}' is not pinned as name==version")
        pins.append((name.strip(), version.strip()))
    return pins


def _copytree(src: Path, dst: Path) -> None:
    shutil.copytree(
        src,
        dst,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(*_SKIP_NAMES, "*.pyc", "*.egg-info"),
    )


def _prune(layer_python: Path) -> None:
    """Drop numpy's own test suites (8 MB nothing imports); the Makefile does the same."""
    numpy_dir = layer_python / "numpy"
    if numpy_dir.is_dir():
        for tests in sorted(numpy_dir.rglob("tests"), reverse=True):
            if tests.is_dir():
                shutil.rmtree(tests)


def copy_installed(pins: list[tuple[str, str]], dest: Path) -> None:
    """Put each pinned distribution into ``dest`` for this interpreter: copied from the running
    environment (per its RECORD, offline) when it holds that exact version, else installed with
    pip (``--no-deps``: the pins are a complete closure), so a fresh venv whose resolver picked
    newer versions still builds exactly what the template deploys."""
    missing: list[str] = []
    for name, version in pins:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"{name}=={version}")
            continue
        if dist.version != version:
            missing.append(f"{name}=={version}")
            continue
        for rel in dist.files or []:
            if rel.parts[0] == ".." or "__pycache__" in rel.parts or rel.suffix == ".pyc":
                continue  # console scripts outside site-packages; bytecode of this interpreter
            src = Path(str(dist.locate_file(rel)))
            if src.is_file():
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
        cmd += ["--only-binary=:all:", "--target", str(dest), *missing]
        env = {"PIP_RETRIES": "1", "PIP_TIMEOUT": "20", **os.environ}
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")


def _stamp(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _make(layer: LayerSpec, dest: Path) -> None:
    """``make build-<LogicalId>`` in the layer's ContentUri, as ``sam build`` runs it."""
    cmd = ["make", "-s", "-C", str(layer.content_uri), f"build-{layer.logical_id}"]
    cmd += [f"ARTIFACTS_DIR={dest}", f"PYTHON={sys.executable}"]
    # Fail fast when the package index is unreachable (pip retries 5 times by default).
    env = {"PIP_RETRIES": "1", "PIP_TIMEOUT": "20", **os.environ}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")


def build_layer(layer: LayerSpec, out: Path, *, target: str) -> Path:
    """Build one layer into ``out/<LogicalId>``; third-party layers are reused while their
    inputs (requirements, Makefile, target, interpreter) are unchanged."""
    dest = out / layer.logical_id
    python_dir = dest / "python"
    if layer.build_method != "makefile":
        raise BuildError(f"{layer.logical_id}: unsupported BuildMethod {layer.build_method}")
    if layer.content_uri != DEPS_DIR:
        # The project's own code (CoreLayer): its Makefile copies the runtime packages only, the
        # same for both targets. Rebuilt every time: the code changes, and copying is cheap.
        shutil.rmtree(dest, ignore_errors=True)
        _make(layer, dest)
        return dest
    req = layer.content_uri / layer.logical_id.removesuffix("Layer").lower() / "requirements.txt"
    if not req.is_file():
        raise BuildError(f"{layer.logical_id}: expected its pins in {req}")
    makefile = layer.content_uri / "Makefile"
    stamp = _stamp(req.read_text(), makefile.read_text(), target, sys.version)
    stamp_file = dest / ".build-stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    if target == "release":
        _make(layer, dest)
    else:
        copy_installed(read_pins(req), python_dir)
        _prune(python_dir)
    stamp_file.write_text(stamp)
    return dest


def build_runtime_standin(out: Path) -> Path:
    dest = out / RUNTIME_DIR_NAME
    shutil.rmtree(dest, ignore_errors=True)
    copy_installed(read_pins(RUNTIME_PROVIDED), dest / "python")
    return dest


def build_function(fn: FunctionSpec, out: Path) -> Path:
    dest = out / fn.logical_id
    shutil.rmtree(dest, ignore_errors=True)
    _copytree(fn.code_uri, dest)
    return dest


def dir_size(path: Path) -> int:
    """Bytes of the files Lambda would get (bytecode that local imports left behind excluded)."""
    return sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and p.name != ".build-stamp" and "__pycache__" not in p.parts
    )


@dataclass
class BuildResult:
    out: Path
    target: str
    functions: list[FunctionSpec]
    layer_bytes: dict[str, int] = field(default_factory=dict)
    function_bytes: dict[str, int] = field(default_factory=dict)  # code + its layers

    def paths_for(self, logical_id: str) -> list[Path]:
        """sys.path of the function as Lambda builds it: code first, then each layer's python/."""
        fn = next(f for f in self.functions if f.logical_id == logical_id)
        paths = [self.out / fn.logical_id]
        paths += [self.out / lid / "python" for lid in fn.layers]
        runtime = self.out / RUNTIME_DIR_NAME / "python"
        if runtime.is_dir():
            paths.append(runtime)
        return paths

    def handler_of(self, logical_id: str) -> str:
        """The Handler the template names for the function (``module.attribute``)."""
        return next(f.handler for f in self.functions if f.logical_id == logical_id)

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "limit_bytes": UNZIPPED_LIMIT_BYTES,
            "layers": self.layer_bytes,
            "functions": self.function_bytes,
        }


def build(
    out: Path, *, target: str, template: Path = TEMPLATE, runtime_standin: bool | None = None
) -> BuildResult:
    """Build every layer and function of ``template`` into ``out``. ``runtime_standin`` (default:
    for the local target) adds what the Lambda runtime provides, for import tests."""
    if target not in ("release", "local"):
        raise BuildError(f"target must be 'release' or 'local', not {target!r}")
    layers, functions = read_specs(load_template(template))
    out.mkdir(parents=True, exist_ok=True)
    result = BuildResult(out=out, target=target, functions=functions)
    for layer in layers.values():
        result.layer_bytes[layer.logical_id] = dir_size(build_layer(layer, out, target=target))
    if runtime_standin if runtime_standin is not None else target == "local":
        build_runtime_standin(out)
    else:
        shutil.rmtree(out / RUNTIME_DIR_NAME, ignore_errors=True)
    for fn in functions:
        code = dir_size(build_function(fn, out))
        result.function_bytes[fn.logical_id] = code + sum(result.layer_bytes[x] for x in fn.layers)
    return result


def report(result: BuildResult) -> list[str]:
    """Print sizes; return the functions over Lambda's unzipped limit."""
    mb = 1_000_000
    limit = f"Lambda's limit: 250 MiB = {UNZIPPED_LIMIT_BYTES / mb:.1f} MB"
    print(f"target: {result.target}   (MB = 10^6 bytes; {limit})")
    for name, size in result.layer_bytes.items():
        print(f"  layer     {name:<16} {size / mb:8.1f} MB")
    over = []
    for name, size in result.function_bytes.items():
        share = size / UNZIPPED_LIMIT_BYTES
        print(f"  function  {name:<16} {size / mb:8.1f} MB  code+layers, {share:.0%} of the limit")
        if size > UNZIPPED_LIMIT_BYTES:
            over.append(name)
    return over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=["release", "local"], default="release")
    parser.add_argument("--out", type=Path, default=None, help="default .cache/lambda-build/TARGET")
    parser.add_argument("--json", type=Path, default=None, help="also write the sizes here")
    args = parser.parse_args(argv)
    out = args.out or ROOT / ".cache" / "lambda-build" / args.target
    try:
        result = build(out.resolve(), target=args.target)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    over = report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.as_json(), indent=2))
    if over:
        print(f"error: over the 250 MB unzipped limit: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
