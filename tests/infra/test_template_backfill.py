"""The ingest function's concurrency is capped on purpose, by one parameter, and its default is
the one docs/deploy.md's backfill table says meets 44k images in 10 minutes without crossing
Pinecone's or a new DynamoDB table's write ceilings."""

from __future__ import annotations

from typing import Any

from fashion_search.cli.aws_backfill import DEFAULT_CONCURRENCY, DEFAULT_SECONDS_PER_IMAGE
from fashion_search.ingest.backfill.cost import estimate

from infra.build_lambda import TEMPLATE, load_template


def _ingest_sqs_event(template: dict[str, Any]) -> dict[str, Any]:
    fn = template["Resources"]["IngestFunction"]["Properties"]
    (event,) = [e for e in fn["Events"].values() if e["Type"] == "SQS"]
    return dict(event["Properties"])


def test_max_concurrency_is_the_parameter_and_its_default_meets_the_goal() -> None:
    template = load_template(TEMPLATE)
    event = _ingest_sqs_event(template)
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "IngestConcurrency"}
    assert "ReportBatchItemFailures" in event["FunctionResponseTypes"]
    param = template["Parameters"]["IngestConcurrency"]
    # Lambda accepts MaximumConcurrency 2..1000: the parameter must not allow anything else.
    assert param["MinValue"] >= 2 and param["MaxValue"] <= 1000
    default = int(param["Default"])
    assert default == DEFAULT_CONCURRENCY  # the CLI's estimate assumes the stack's default
    e = estimate(44_000, concurrency=default, seconds_per_image=DEFAULT_SECONDS_PER_IMAGE)
    assert e.wall_s < 600 and e.limited_by == "lambda concurrency"


def test_the_prod_config_deploys_the_default_concurrency() -> None:
    """dev may run smaller (it reserves nothing); prod is what the backfill table is about."""
    import re
    import tomllib

    config = tomllib.loads((TEMPLATE.parent / "samconfig.toml").read_text(encoding="utf-8"))
    overrides = str(config["prod"]["deploy"]["parameters"]["parameter_overrides"])
    found = re.findall(r"IngestConcurrency=(\d+)", overrides)
    default = load_template(TEMPLATE)["Parameters"]["IngestConcurrency"]["Default"]
    assert [int(v) for v in found] in ([], [int(default)]), found
