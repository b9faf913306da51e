"""Cold start of the built Lambda artifacts with a model bundle delivered from S3, measured offline,
phase by phase, for two bundles alternated (A B A B ..., e.g. fp32 and int8).

Starts a moto S3 server on loopback, uploads each bundle to s3://BUCKET/models/NAME/ (as
``fashion-search aws upload-model`` does), builds the artifacts (infra/build_lambda.py), then in
fresh interpreters that see only the built function + layer directories (``-I -S``) times:

  import     numpy, onnxruntime, tokenizers, pillow, pydantic, Powertools, pinecone, the core
  copy       fetch_s3_bundle: S3 -> /tmp (what FASHION_SEARCH_MODEL__S3_URI does at cold start)
  load       OnnxClipEmbedder.from_bundle + load(): both ONNX sessions and the tokenizer
  first      the first text query and the first image (224 px JPEG) embedding
  restore    what functions/api/app.py's SnapStart after-restore hook does (re-seed, a new boto3
             session and client, one S3 round trip) and then one text query: the work left in
             a request served by a restored snapshot (Lambda's own resume is not measurable here)

From the phases it derives the first request of each ApiColdStart option: ``none`` (the whole
init, then the query), ``snapstart`` (restore), ``provisioned`` (a warm query). Per phase: min and
median over the rounds, the B/A ratio of the medians, and the load average beside them.

moto on loopback is not S3: the copy figure is the local cost of the transfer, and real S3
within a region typically delivers 100-300 MB/s to a Lambda with 3 GB of memory. CPU figures
depend on the cores: Lambda at 3008 MB has ~2 vCPUs, like this machine.

    python infra/coldstart.py --bundle .cache/bench-bundles/vit-b-32-random-v2 \
        --peer .cache/bench-bundles/vit-b-32-random-v2-int8 --rounds 2 --json reports/cold.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
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
    emb.embed_texts(["a blue denim jacket"])
    t6 = time.perf_counter()
    # The SnapStart after-restore hook (functions/api/app.py), then one query.
    import random
    random.seed()
    boto3.setup_default_session()
    boto3.client("s3").list_objects_v2(Bucket=sys.argv[4], MaxKeys=1)
    emb.embed_texts(["a green wool scarf"])
    t7 = time.perf_counter()
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print("@@" + json.dumps({"import_s": t1 - t0, "copy_s": t2 - t1, "load_s": t3 - t2,
        "first_text_s": t4 - t3, "first_image_s": t5 - t4, "warm_text_s": t6 - t5,
        "restore_s": t7 - t6, "bundle_mb": size / 1e6, "dim": emb.dim}))
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


PHASES = ("import_s", "copy_s", "load_s", "first_text_s", "first_image_s", "restore_s")


def first_request(run: dict[str, float]) -> dict[str, float]:
    """The first request's latency under each ApiColdStart option, from one run's phases."""
    init = run["import_s"] + run["copy_s"] + run["load_s"] + run["first_image_s"]
    return {
        # The init (import, copy, load, warm-up) runs inside the first request's wait.
        "none": init + run["first_text_s"],
        "snapstart": run["restore_s"],
        "provisioned": run["warm_text_s"],
    }


def measure(
    bundles: list[Path], *, rounds: int, python: str, paths: list[Path]
) -> dict[str, list[dict[str, Any]]]:
    """Each bundle once per round, in the same order every round (A B A B ...)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
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
    results: dict[str, list[dict[str, Any]]] = {b.name: [] for b in bundles}
    try:
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=BUCKET)
        for bundle in bundles:
            _upload(client, bundle, f"models/{bundle.name}/")
        for _ in range(rounds):
            for bundle in bundles:
                results[bundle.name].append(_one_run(bundle, python, paths, env))
    finally:
        server.stop()
    return results


def _one_run(bundle: Path, python: str, paths: list[Path], env: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        child = Path(tmp) / "child.py"
        child.write_text(_CHILD)
        cmd = [python, "-I", "-S", "-B", str(child), json.dumps([str(p) for p in paths])]
        cmd += [f"s3://{BUCKET}/models/{bundle.name}/", str(Path(tmp) / "cache"), BUCKET]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("@@")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"cold start run failed:\n{proc.stderr[-4000:]}")
        run: dict[str, Any] = json.loads(lines[-1][2:])
        run["first_request_s"] = first_request(run)
        return run


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    rows: dict[str, list[float]] = {k: [r[k] for r in runs] for k in PHASES}
    for option in ("none", "snapstart", "provisioned"):
        rows[f"first request, {option}"] = [r["first_request_s"][option] for r in runs]
    return {k: {"min": min(v), "median": statistics.median(v)} for k, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    base = ROOT / ".cache" / "bench-bundles"
    parser.add_argument("--bundle", type=Path, default=base / "vit-b-32-random-v2")
    parser.add_argument("--peer", type=Path, default=base / "vit-b-32-random-v2-int8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    for bundle in (args.bundle, args.peer):
        if not (bundle / "config.json").is_file():
            print(f"error: no bundle at {bundle} (python benchmarks/embed.py builds one)")
            return 2
    if args.rounds < 1:
        print("error: --rounds must be at least 1")
        return 2
    built = build(ROOT / ".cache" / "lambda-build" / "local", target="local")
    a, b = args.bundle.resolve(), args.peer.resolve()
    load_before = os.getloadavg()
    runs = measure(
        [a, b], rounds=args.rounds, python=sys.executable, paths=built.paths_for("ApiFunction")
    )
    load_after = os.getloadavg()
    sa, sb = summarise(runs[a.name]), summarise(runs[b.name])
    print(
        f"A = {a.name} ({runs[a.name][0]['bundle_mb']:.0f} MB), "
        f"B = {b.name} ({runs[b.name][0]['bundle_mb']:.0f} MB); "
        f"{args.rounds} rounds A B A B; load average {load_before[0]:.1f} -> {load_after[0]:.1f} "
        f"({os.cpu_count()} cores)"
    )
    print(f"  {'seconds':<28} {'A min':>7} {'A med':>7} {'B min':>7} {'B med':>7} {'B/A':>6}")
    for key in sa:
        ratio = sb[key]["median"] / sa[key]["median"] if sa[key]["median"] else float("nan")
        print(
            f"  {key:<28} {sa[key]['min']:7.2f} {sa[key]['median']:7.2f} "
            f"{sb[key]['min']:7.2f} {sb[key]['median']:7.2f} {ratio:6.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "bundles": [str(a), str(b)],
            "rounds": args.rounds,
            "loadavg": [load_before, load_after],
            "summary": {a.name: sa, b.name: sb},
            "runs": runs,
        }
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
