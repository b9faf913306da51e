"""``fashion-search aws backfill``: queue every image of the bucket the catalog does not hold yet,
so the deployed ingest function indexes it (docs/deploy.md, "Backfill")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from tqdm import tqdm

from fashion_search.cli.aws import aws_app
from fashion_search.errors import ConfigError
from fashion_search.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from fashion_search.ingest.backfill.run import BackfillReport

# Seconds per image on one ingest worker (3008 MB, fp32 ViT-B/32), the figure docs/deploy.md
# derives from benchmarks/backfill.py ("Backfill: how long, how much"); for --dry-run only.
DEFAULT_SECONDS_PER_IMAGE = 0.095
DEFAULT_CONCURRENCY = 10  # template.yaml IngestConcurrency


def _clients(settings: Settings) -> tuple[Any, Any, Any]:
    import boto3
    from botocore.config import Config

    # Standard retry mode backs off on throttling (SQS, DynamoDB) before we see an error.
    config = Config(retries={"mode": "standard", "max_attempts": 8})
    session = boto3.session.Session(region_name=settings.aws.region)

    def make(name: str) -> Any:
        return session.client(name, endpoint_url=settings.aws.endpoint_url, config=config)

    return make("s3"), make("sqs"), make("dynamodb")


def _model_id(model_id: str | None, bundle: Path | None) -> str | None:
    if model_id and bundle:
        raise ConfigError("give --model-id or --bundle, not both")
    if bundle is not None:
        from fashion_search.model.bundle import Bundle

        return Bundle.open(bundle).model_id
    return model_id


def _checked_targets(settings: Settings, queue_url: str | None, prefix: str | None) -> str:
    """The ingest queue's URL, once the bucket, table, queue and --prefix are known to be usable."""
    aws = settings.aws
    queue = queue_url or aws.ingest_queue_url
    needed = (("BUCKET", aws.bucket), ("TABLE", aws.table), ("INGEST_QUEUE_URL", queue))
    missing = [name for name, value in needed if not value]
    if missing:
        raise ConfigError(
            "aws backfill needs "
            + ", ".join(f"{ENV_PREFIX}AWS__{m}" for m in missing)
            + ' (`eval "$(fashion-search aws env)"` sets them from the stack)',
            field=f"{ENV_PREFIX}AWS__{missing[0]}",
        )
    if prefix is not None and not prefix.startswith(aws.ingest_prefix):
        raise ConfigError(
            f"--prefix {prefix!r} is outside the ingest prefix {aws.ingest_prefix!r}: only "
            "objects under it are ingested",
            field="prefix",
        )
    assert queue  # checked above; narrows the type
    return queue


def _print_report(
    report: BackfillReport, *, concurrency: int, workers: int, json_path: Path | None
) -> None:
    """The summary and estimate on stderr, the JSON report on stdout (and in --json); exit 1
    when an object could not be queued."""
    from fashion_search.ingest.backfill.cost import enqueue_rate, estimate
    from fashion_search.ingest.backfill.run import summary_lines

    data = report.as_dict()
    est = estimate(
        report.queued_total,
        concurrency=concurrency,
        seconds_per_image=DEFAULT_SECONDS_PER_IMAGE,
        enqueue_per_s=enqueue_rate(workers=workers),
    )
    data["estimate"] = est.as_dict()
    for line in summary_lines(report):
        typer.echo(line, err=True)
    typer.echo(
        f"  estimate at concurrency {concurrency}: {est.wall_s / 60:.1f} min "
        f"(limited by {est.limited_by}), ${est.total_usd:.2f}",
        err=True,
    )
    text = json.dumps(data, indent=2, sort_keys=True)
    typer.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n", encoding="utf-8")
    if report.failed:
        typer.echo(
            f"error: {len(report.failed)} object(s) could not be queued; rerun to retry them",
            err=True,
        )
        raise typer.Exit(1)


def backfill_cmd(
    prefix: Annotated[
        str | None, typer.Option(help="Only keys under this prefix (inside the ingest prefix).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be queued; change nothing.")
    ] = False,
    queue_url: Annotated[
        str | None, typer.Option(help=f"Ingest queue (default {ENV_PREFIX}AWS__INGEST_QUEUE_URL).")
    ] = None,
    model_id: Annotated[
        str | None, typer.Option(help="Re-queue images indexed by any other model than this.")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="...or the deployed bundle, to compute its model id.")
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Queue FAILED images again even with the same eTag."),
    ] = False,
    requeue_pending: Annotated[
        bool,
        typer.Option(
            "--requeue-pending", help="Queue PENDING images even while the queue is not empty."
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, help="The stack's IngestConcurrency (for the estimate).")
    ] = DEFAULT_CONCURRENCY,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Chunks of 10 queued in parallel.")
    ] = 16,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the report here.")
    ] = None,
) -> None:
    """Index what the bucket already holds (queued to the deployed ingest function).

    Queues an S3-shaped event for every object under the ingest prefix that the catalog does not
    hold indexed with the same eTag (and model)."""
    from fashion_search.ingest.backfill.messages import SqsSender
    from fashion_search.ingest.backfill.run import Backfill
    from fashion_search.stores.aws.dynamodb_catalog import DynamoDBCatalog

    settings = Settings()
    aws = settings.aws
    queue = _checked_targets(settings, queue_url, prefix)
    assert aws.bucket and aws.table  # checked by _checked_targets; narrows the types
    ingest_prefix = aws.ingest_prefix
    s3, sqs, dynamodb = _clients(settings)
    region = aws.region or s3.meta.region_name or "us-east-1"
    backfill = Backfill(
        s3=s3,
        catalog=DynamoDBCatalog(aws.table, client=dynamodb),
        sender=SqsSender(sqs, queue),
        bucket=aws.bucket,
        region=region,
        ingest_prefix=ingest_prefix,
        model_id=_model_id(model_id, bundle),
        workers=workers,
    )
    queued_so_far = 0
    with tqdm(desc="backfill", unit="obj") as bar:

        def progress(listed: int, queued: int) -> None:
            nonlocal queued_so_far
            queued_so_far += queued
            bar.update(listed)
            bar.set_postfix(queued=queued_so_far, refresh=False)

        report = backfill.run(
            prefix=prefix,
            dry_run=dry_run,
            retry_failed=retry_failed,
            requeue_pending=requeue_pending,
            on_progress=progress,
        )
    _print_report(report, concurrency=concurrency, workers=workers, json_path=json_path)


def register(app: typer.Typer) -> None:
    aws_app.command("backfill")(backfill_cmd)
