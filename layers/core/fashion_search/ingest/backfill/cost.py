"""How long a backfill takes on AWS and what it costs: a model with every input named.

Used by ``aws backfill --dry-run`` and by ``benchmarks/backfill.py`` (which writes the table in
docs/deploy.md). Prices are us-east-1 list prices; each constant names its source. Wall time is
the slowest of four ceilings: the caller queueing (markers + SendMessageBatch), the Lambda
workers (concurrency / seconds per image), Pinecone's upsert request rate (one upsert per
invocation, ``batch_size`` vectors each), and the write throughput a new on-demand DynamoDB
table takes without throttling (a new table's first burst: it scales up after, so this errs
slow).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Lambda: $0.0000166667 per GB-second (x86) and $0.20 per million requests
# (https://aws.amazon.com/lambda/pricing/, "How AWS Pricing Works: Lambda" whitepaper).
LAMBDA_GB_S_USD = 0.0000166667
LAMBDA_REQUEST_USD = 0.20 / 1e6
# Lambda gives one vCPU per 1,769 MB (Lambda developer guide, "Configuring memory").
LAMBDA_MB_PER_VCPU = 1769
# SQS standard: $0.40 per million requests, each 64 KB chunk a request
# (https://aws.amazon.com/sqs/pricing/).
SQS_REQUEST_USD = 0.40 / 1e6
# S3 Standard: GET/HEAD $0.0004 per 1,000, LIST $0.005 per 1,000 (https://aws.amazon.com/s3/pricing/).
S3_GET_USD = 0.0004 / 1000
S3_LIST_USD = 0.005 / 1000
# DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request
# units (https://aws.amazon.com/dynamodb/pricing/on-demand/, after the November 2024 cut).
DDB_WRU_USD = 0.625 / 1e6
DDB_RRU_USD = 0.125 / 1e6
# "New on-demand tables will be able to sustain up to 4,000 writes per second" (DynamoDB
# developer guide, "Pre-warming a table for on-demand capacity mode").
DDB_NEW_TABLE_WRU_PER_S = 4000
# Pinecone Standard plan: $4 per million write units (https://www.pinecone.io/pricing/);
# upserts are metered at about 1 WU per KB written (docs.pinecone.io, "Understanding cost").
PINECONE_WU_USD = 4.0 / 1e6
# 100 upsert requests per second per namespace (docs.pinecone.io, "Rate limits").
PINECONE_UPSERTS_PER_S = 100

# Per image, from what the ingest handler does (ingest/pipeline.py, ingest/writes.py), in
# DynamoDB write request units: idempotency claim + complete (1 + 1, their own table); on the
# catalog table the backfill's queued marker (1), PENDING with the 2 KB embedding (3), INDEXED
# (3: an update is billed on the larger of the old and new item); on its two KEYS_ONLY indexes
# the marker and PENDING rows (2) and the status change (2): 2 + 7 + 4.
WRU_PER_IMAGE = 13
# Only the catalog table's own writes count against its ceiling (indexes and the idempotency
# table have their own).
CATALOG_WRU_PER_IMAGE = 7
# Reads: the backfill's BatchGetItem and the handler's get_many (0.5 RRU each, eventually
# consistent, < 4 KB), the ledger's conditional put reads nothing.
RRU_PER_IMAGE = 1
# S3: one HEAD and one GET per image; LIST returns 1,000 keys a call.
S3_GETS_PER_IMAGE = 2
# Pinecone: a 512-d record is ~2.4 KB with its metadata, 1 WU per KB written (at least 5 per
# request, which a 10-record upsert exceeds).
PINECONE_WU_PER_IMAGE = 2.4
# SQS: one send (batched by 10), one receive and one delete per Lambda batch.
SQS_REQUESTS_PER_IMAGE = 0.1
SEND_BATCH = 10  # SendMessageBatch entries


@dataclass(frozen=True, slots=True)
class Estimate:
    images: int
    concurrency: int
    seconds_per_image: float
    wall_s: float
    limited_by: str
    lambda_gb_s: float
    cost_usd: dict[str, float]

    @property
    def total_usd(self) -> float:
        return sum(self.cost_usd.values())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost_usd"] = {k: round(v, 4) for k, v in self.cost_usd.items()}
        data["wall_s"], data["lambda_gb_s"] = round(self.wall_s, 1), round(self.lambda_gb_s, 1)
        return data | {"total_usd": round(self.total_usd, 4)}


def enqueue_rate(*, workers: int = 16, round_trip_s: float = 0.05) -> float:
    """Objects per second the caller queues: each worker writes up to 10 queued markers, then
    sends one SendMessageBatch, one round trip each (~50 ms from a laptop to the region,
    ~5 ms from CloudShell or EC2 in it)."""
    return workers * SEND_BATCH / ((SEND_BATCH + 1) * round_trip_s)


def estimate(
    images: int,
    *,
    concurrency: int,
    seconds_per_image: float,
    batch_size: int = 10,
    memory_mb: int = 3008,
    cold_start_s: float = 20.0,
    enqueue_per_s: float | None = None,
) -> Estimate:
    """Wall time and bill of indexing ``images`` at ``concurrency`` Lambda workers, each
    spending ``seconds_per_image`` per image (warm), while the caller queues them."""
    rates = {
        "enqueue (caller)": enqueue_per_s or enqueue_rate(),
        "lambda concurrency": concurrency / seconds_per_image,
        "Pinecone upserts/s": PINECONE_UPSERTS_PER_S * batch_size,
        "DynamoDB new-table writes/s": DDB_NEW_TABLE_WRU_PER_S / CATALOG_WRU_PER_IMAGE,
    }
    limited_by = min(rates, key=lambda k: rates[k])
    wall_s = cold_start_s + images / rates[limited_by] if images else 0.0
    gb = memory_mb / 1024
    gb_s = images * seconds_per_image * gb + (concurrency * cold_start_s * gb if images else 0)
    invocations = -(-images // batch_size)
    cost = {
        "lambda": gb_s * LAMBDA_GB_S_USD + invocations * LAMBDA_REQUEST_USD,
        "sqs": images * SQS_REQUESTS_PER_IMAGE * 3 * SQS_REQUEST_USD,
        "s3": images * S3_GETS_PER_IMAGE * S3_GET_USD + -(-images // 1000) * S3_LIST_USD,
        "dynamodb": images * (WRU_PER_IMAGE * DDB_WRU_USD + RRU_PER_IMAGE * DDB_RRU_USD),
        "pinecone": images * PINECONE_WU_PER_IMAGE * PINECONE_WU_USD,
    }
    return Estimate(images, concurrency, seconds_per_image, wall_s, limited_by, gb_s, cost)


def lambda_seconds_per_image(
    *,
    model_images_per_s_2cpu: float,
    handler_overhead: float,
    memory_mb: int = 3008,
    store_latency_s: float = 0.006,
    sequential_store_calls: int = 4,
) -> float:
    """Seconds per image on one Lambda worker: the model's rate scaled from 2 cores to the
    function's vCPUs, times the handler's own overhead over the bare model (measured by
    benchmarks/backfill.py), plus the per-record DynamoDB calls the handler makes one after
    another (claim, PENDING, INDEXED, complete) at single-digit-millisecond latency."""
    vcpus = min(memory_mb / LAMBDA_MB_PER_VCPU, 6.0)
    model_s = 1.0 / (model_images_per_s_2cpu * vcpus / 2.0)
    return model_s * handler_overhead + sequential_store_calls * store_latency_s
