"""Backfill figures: the ingest handler's cost per image here, the enqueue side's rates, and the
modelled wall time and bill of a backfill on AWS (the table in docs/deploy.md).

1. Handler vs bare model, per image, at SQS batch sizes 1-32: the real ingest Lambda module
   (functions/ingest/app.py) handles an SQS event of ``B`` backfill messages; each JPEG is read
   from S3 (moto), embedded, written to DynamoDB (moto, with the idempotency ledger) and upserted
   to Pinecone (the SDK against tests/fakes' server). The peer is ``embed_images`` on the same
   JPEG bytes at the same batch size. The two alternate (bare, handler, bare, handler ...) over
   ``--rounds`` rounds; min and median per image and their ratio are printed.
2. Enqueue side against moto: ``aws backfill --dry-run`` (list + BatchGetItem + decide) next to
   a bare paginated ListObjectsV2 of the same keys, and a real run (queued markers +
   SendMessageBatch) next to bare SendMessageBatch calls of as many messages; alternated.
3. The model (``fashion_search.ingest.backfill.cost``) for 44k, 1M and 10M images at concurrency
   10/100/1000, with the handler ratio measured in step 1 (batch 10, the template's BatchSize).

The machine is shared: ``os.getloadavg()`` is printed with every figure.

    python benchmarks/backfill.py [--bundle DIR] [--rounds 3] [--json bench-backfill.json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REGION = "us-east-1"
BUCKET = "bench-backfill-images"
TABLE, LEDGER, INDEX = "bench-catalog", "bench-idempotency", "bench-index"
BATCHES = (1, 4, 10, 32)
# ViT-B/32 embed_images (decode + image tower), batch 8, 2 cores, measured on this machine class
# (shared/design/ANCHORS.md, "Added after measuring v1"): fp32 and int8. The model's absolute
# speed here is not usable under a shared machine's load; the handler/bare ratio is.
VIT_B32_IMAGES_PER_S_2CPU = {"fp32": 21.8, "int8": 55.0}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def photo_jpeg(seed: int) -> bytes:
    """A Kaggle-small-sized (60x80) product-photo-like JPEG (api.py's generator, smaller)."""
    from api import photo_jpeg as photo  # type: ignore[import-not-found]

    return bytes(photo(seed, size=(80, 60)))


def default_bundle() -> Path:
    """The ViT-B/32-architecture benchmark bundle the other benchmarks use (built on first use)."""
    from embed import vit_b32_bundle  # type: ignore[import-not-found]

    return Path(vit_b32_bundle())


@contextlib.contextmanager
def aws_world(bundle: Path) -> Iterator[dict[str, Any]]:
    """moto (S3, DynamoDB, SQS) + the Pinecone test server + the ingest Lambda module."""
    import boto3
    from fashion_search.stores.aws.dynamodb_catalog import create_catalog_table
    from moto import mock_aws

    from tests.fakes.pinecone_api import FakePinecone

    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        os.environ[name] = value
    pinecone = FakePinecone().start()
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_catalog_table(ddb, TABLE)
        ddb.create_table(
            TableName=LEDGER,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="bench-ingest")["QueueUrl"]
        from fashion_search.model.bundle import Bundle

        pinecone.create_index(INDEX, dimension=int(Bundle.open(bundle).embed_dim or 512))
        os.environ.update(
            {
                "FASHION_SEARCH_HOME": "aws",
                "FASHION_SEARCH_MODEL__BUNDLE": str(bundle),
                "FASHION_SEARCH_AWS__REGION": REGION,
                "FASHION_SEARCH_AWS__BUCKET": BUCKET,
                "FASHION_SEARCH_AWS__TABLE": TABLE,
                "FASHION_SEARCH_AWS__IDEMPOTENCY_TABLE": LEDGER,
                "FASHION_SEARCH_AWS__PINECONE_INDEX": INDEX,
                "FASHION_SEARCH_AWS__PINECONE_API_KEY": pinecone.api_key,
                "FASHION_SEARCH_AWS__PINECONE_HOST": pinecone.host_of(INDEX),
                "FASHION_SEARCH_LOG_LEVEL": "WARNING",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                "POWERTOOLS_SERVICE_NAME": "bench-ingest",
                "POWERTOOLS_METRICS_NAMESPACE": "bench",
            }
        )
        spec = importlib.util.spec_from_file_location(
            "bench_ingest_app", REPO / "functions" / "ingest" / "app.py"
        )
        assert spec is not None and spec.loader is not None
        app = importlib.util.module_from_spec(spec)
        with contextlib.redirect_stdout(io.StringIO()):
            spec.loader.exec_module(app)
        try:
            yield {"s3": s3, "ddb": ddb, "sqs": sqs, "queue": queue, "app": app}
        finally:
            pinecone.stop()


class Context:
    function_name = "bench-ingest"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-ingest"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-ingest",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def handler_vs_bare(world: dict[str, Any], rounds: int) -> dict[str, Any]:
    from fashion_search.ingest.backfill.messages import backfill_event
    from fashion_search.ingest.backfill.run import ZERO_TOKEN

    app, s3 = world["app"], world["s3"]
    embedder = app.INGESTOR.embedder
    embedder.embed_images([photo_jpeg(0)] * 4)  # warm-up: sessions open, as at a cold start
    serial = 0
    per: dict[int, dict[str, list[float]]] = {b: {"bare": [], "handler": []} for b in BATCHES}
    for r in range(rounds):
        for b in BATCHES:
            keys, blobs = [], []
            for _ in range(b):
                serial += 1
                data = photo_jpeg(serial)
                key = f"images/r{r}/{serial}.jpg"
                etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')
                keys.append((key, etag, len(data)))
                blobs.append(data)
            t0 = time.perf_counter()
            result = embedder.embed_images(blobs)
            per[b]["bare"].append((time.perf_counter() - t0) / b)
            assert not result.errors
            bodies = [
                backfill_event(
                    bucket=BUCKET, region=REGION, key=k, etag=e, size=n, sequencer=ZERO_TOKEN
                )
                for k, e, n in keys
            ]
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # Powertools' metrics line
                response = app.handler(sqs_event(bodies), Context())
            per[b]["handler"].append((time.perf_counter() - t0) / b)
            assert not response["batchItemFailures"], response
        print(f"round {r + 1}/{rounds} done, load {load()}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    for b, sides in per.items():
        bare, handler = sides["bare"], sides["handler"]
        out[str(b)] = {
            "bare_ms_per_image": {
                "min": round(min(bare) * 1e3, 2),
                "median": round(statistics.median(bare) * 1e3, 2),
            },
            "handler_ms_per_image": {
                "min": round(min(handler) * 1e3, 2),
                "median": round(statistics.median(handler) * 1e3, 2),
            },
            "ratio_handler_to_bare": {
                "min": round(min(handler) / min(bare), 3),
                "median": round(statistics.median(handler) / statistics.median(bare), 3),
            },
        }
    return out


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def enqueue_rates(world: dict[str, Any], rounds: int, n: int) -> dict[str, Any]:
    from fashion_search.ingest.backfill.messages import SqsSender
    from fashion_search.ingest.backfill.run import Backfill
    from fashion_search.stores.aws.dynamodb_catalog import DynamoDBCatalog

    s3, sqs = world["s3"], world["sqs"]
    catalog = DynamoDBCatalog(TABLE, client=world["ddb"])
    blob = photo_jpeg(1)
    times: dict[str, list[float]] = {k: [] for k in ("list", "dry_run", "send", "run")}
    for r in range(rounds):
        prefix = f"images/enqueue-{r}/"
        # A queue per round: SQS (and moto) allow one PurgeQueue a minute.
        queue = sqs.create_queue(QueueName=f"bench-enqueue-{r}")["QueueUrl"]
        for i in range(n):
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}{i}.jpg", Body=blob)
        backfill = Backfill(
            s3=s3,
            catalog=catalog,
            sender=SqsSender(sqs, queue),
            bucket=BUCKET,
            region=REGION,
            ingest_prefix="images/",
        )

        def bare_list(prefix: str = prefix) -> None:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            assert sum(len(p.get("Contents", [])) for p in pages) == n

        def bare_send(queue: str = queue) -> None:
            for start in range(0, n, 10):
                entries = [
                    {"Id": str(i), "MessageBody": "{}" * 300} for i in range(min(10, n - start))
                ]
                sqs.send_message_batch(QueueUrl=queue, Entries=entries)

        times["list"].append(timed(bare_list))
        times["dry_run"].append(
            timed(lambda b=backfill, p=prefix: b.run(prefix=p, dry_run=True, requeue_pending=True))
        )
        times["send"].append(timed(bare_send))
        times["run"].append(
            timed(lambda b=backfill, p=prefix: b.run(prefix=p, requeue_pending=True))
        )
        print(f"enqueue round {r + 1}/{rounds}, load {load()}", file=sys.stderr, flush=True)

    def rate(key: str) -> dict[str, float]:
        return {
            "max": round(n / min(times[key]), 1),
            "median": round(n / statistics.median(times[key]), 1),
        }

    return {
        "objects_per_round": n,
        "bare_list_objects_per_s": rate("list"),
        "dry_run_objects_per_s": rate("dry_run"),
        "ratio_dry_run_to_bare_list": round(
            statistics.median(times["dry_run"]) / statistics.median(times["list"]), 2
        ),
        "bare_send_messages_per_s": rate("send"),
        "backfill_run_objects_per_s": rate("run"),
        "ratio_run_to_bare_send": round(
            statistics.median(times["run"]) / statistics.median(times["send"]), 2
        ),
    }


def model_table(ratio_at_10: float) -> dict[str, Any]:
    from fashion_search.ingest.backfill.cost import (
        enqueue_rate,
        estimate,
        lambda_seconds_per_image,
    )

    spi = {
        name: lambda_seconds_per_image(model_images_per_s_2cpu=rate, handler_overhead=ratio_at_10)
        for name, rate in VIT_B32_IMAGES_PER_S_2CPU.items()
    }
    callers = {
        "laptop": enqueue_rate(round_trip_s=0.05),
        "in_region": enqueue_rate(round_trip_s=0.005),
    }
    rows = []
    for images in (44_000, 1_000_000, 10_000_000):
        for concurrency in (10, 100, 1000):
            walls: dict[str, Any] = {}
            for model in ("fp32", "int8"):
                for caller, rate in callers.items():
                    e = estimate(
                        images,
                        concurrency=concurrency,
                        seconds_per_image=spi[model],
                        enqueue_per_s=rate,
                    )
                    walls[f"{model}_{caller}"] = [round(e.wall_s / 60, 1), e.limited_by]
            bill = estimate(images, concurrency=concurrency, seconds_per_image=spi["fp32"])
            rows.append(
                {
                    "images": images,
                    "concurrency": concurrency,
                    "wall_min_and_limit": walls,
                    "lambda_gb_s_fp32": round(bill.lambda_gb_s),
                    "cost_usd_fp32": {k: round(v, 2) for k, v in bill.cost_usd.items()},
                    "total_usd_fp32": round(bill.total_usd, 2),
                }
            )
    return {
        "seconds_per_image_per_worker": {k: round(v, 4) for k, v in spi.items()},
        "enqueue_objects_per_s": {k: round(v) for k, v in callers.items()},
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=None, help="model bundle (default ViT-B/32)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--enqueue-n", type=int, default=1000, help="objects per enqueue round")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--from-json", type=Path, default=None, help="reuse the measured figures of an earlier run"
    )
    args = ap.parse_args()
    if args.from_json is not None:
        result = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        bundle = args.bundle or default_bundle()
        with tempfile.TemporaryDirectory(prefix="bench-backfill-"):
            with aws_world(bundle) as world:
                handler = handler_vs_bare(world, args.rounds)
                enqueue = enqueue_rates(world, args.rounds, args.enqueue_n)
        result = {
            "bundle": bundle.name,
            "cpu_count": os.cpu_count(),
            "load_average_end": load(),
            "handler_vs_bare_by_batch": handler,
            "enqueue_vs_bare_on_moto": enqueue,
        }
    ratio10 = result["handler_vs_bare_by_batch"]["10"]["ratio_handler_to_bare"]["median"]
    result["model"] = model_table(ratio10)
    result["model_inputs"] = {
        "handler_ratio_batch_10": ratio10,
        "vit_b32_images_per_s_2cpu": VIT_B32_IMAGES_PER_S_2CPU,
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
