"""Cold start of the built Lambda artifacts with a model bundle delivered from S3, measured offline.

Starts a moto S3 server on loopback, uploads the bundle to s3://BUCKET/models/NAME/ (as
``fashion-search aws upload-model`` does), builds the artifacts (infra/build_lambda.py), then in
fresh interpreters that see only the built function + layer directories (``-I -S``) times:

  import     numpy, onnxruntime, tokenizers, pillow, pydantic, Powertools, pinecone, the core
  copy       fetch_s3_bundle: S3 -> /tmp (what FASHION_SEARCH_MODEL__S3_URI does at cold start)
  load       OnnxClipEmbedder.from_bundle + load(): both ONNX sessions and the tokenizer
  first      the first text query and the first image (224 px JPEG) embedding

moto on loopback is not S3: the copy figure is the local cost of the transfer, and real S3
within a region typically delivers 100-300 MB/s to a Lambda with 3 GB of memory. CPU figures
depend on the cores: Lambda at 3008 MB has ~2 vCPUs, like this machine.

    python infra/coldstart.py --bundle .cache/bench-bundles/vit-b-32-random --json reports/cold.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.build_lambda import build  # noqa: E402

BUCKET = "fashion-search-coldstart"
_CHILD = textwrap.dedent(
    """
    import io, json, sys, time
    sys.path[:0] = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    import numpy, onnxruntime, tokenizers, PIL.Image, pydantic, pinecone  # noqa
    import aws_lambda_powertools  # noqa
    from fashion_search.model.embedder import OnnxClipEmbedder
    from fashion_search.model.loader import fetch_s3_bundle
    from fashion_search.settings import Settings
    import boto3
    t1 = time.perf_counter()
    path = fetch_s3_bundle(sys.argv[2], cache_dir=__import__("pathlib").Path(sys.argv[3]))
    t2 = time.perf_counter()
    emb = OnnxClipEmbedder.from_bundle(path)
    emb.load()
    t3 = time.perf_counter()
    emb.embed_texts(["a red summer dress"])
    t4 = time.perf_counter()
    buf = io.BytesIO()
    PIL.Image.new("RGB", (224, 224), (120, 40, 200)).save(buf, format="JPEG")
    out = emb.embed_images([buf.getvalue()])
    t5 = time.perf_counter()
    assert not out.errors
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print("@@" + json.dumps({"import_s": t1 - t0, "copy_s": t2 - t1, "load_s": t3 - t2,
        "first_text_s": t4 - t3, "first_image_s": t5 - t4, "bundle_mb": size / 1e6,
        "dim": emb.dim}))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _upload(client: Any, bundle: Path, prefix: str) -> None:
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle)
        if not any(part.startswith(".") for part in rel.parts):
            client.upload_file(str(path), BUCKET, prefix + rel.as_posix())


def measure(bundle: Path, *, runs: int, python: str, paths: list[Path]) -> list[dict[str, Any]]:
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    results = []
    try:
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        _upload(client, bundle, f"models/{bundle.name}/")
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
                child = Path(tmp) / "child.py"
                child.write_text(_CHILD)
                cmd = [python, "-I", "-S", "-B", str(child), json.dumps([str(p) for p in paths])]
                cmd += [f"s3://{BUCKET}/models/{bundle.name}/", str(Path(tmp) / "cache")]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
                lines = [x for x in proc.stdout.splitlines() if x.startswith("@@")]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f"cold start run failed:\n{proc.stderr[-4000:]}")
                results.append(json.loads(lines[-1][2:]))
    finally:
        server.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = ROOT / ".cache" / "bench-bundles" / "vit-b-32-random"
    parser.add_argument("--bundle", type=Path, default=default)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.bundle / "config.json").is_file():
        print(f"error: no bundle at {args.bundle} (python benchmarks/embed.py builds one)")
        return 2
    built = build(ROOT / ".cache" / "lambda-build" / "local", target="local")
    runs = measure(
        args.bundle.resolve(),
        runs=args.runs,
        python=sys.executable,
        paths=built.paths_for("ApiFunction"),
    )
    keys = ("import_s", "copy_s", "load_s", "first_text_s", "first_image_s")
    print(f"bundle {args.bundle.name}: {runs[0]['bundle_mb']:.0f} MB, {runs[0]['dim']}-d")
    for key in keys:
        values = ", ".join(f"{r[key]:.2f}" for r in runs)
        print(f"  {key:<14} {values}  s")
    totals = [sum(r[k] for k in keys) for r in runs]
    print(f"  {'total':<14} {', '.join(f'{t:.2f}' for t in totals)}  s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"bundle": str(args.bundle), "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
