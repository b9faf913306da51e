"""The search API Lambda: the FastAPI app behind API Gateway through Mangum.

Everything heavy happens at import, once per container: settings, the ONNX model (both towers
opened and run once), the store clients. Lambda's init phase
runs at full CPU and before the first request's clock, so this beats loading lazily on the first
request (measured in docs/api.md, ``benchmarks/api.py``). If loading fails at import (a missing
setting, S3 unreachable) the error is logged and loading is retried on the next request, which
then answers with the API's JSON error shape instead of an opaque init failure.

With SnapStart (template parameter ApiColdStart=snapstart) that init runs once, when a version is
published, and every new environment resumes from its snapshot: model loaded, tower warmed. What
a snapshot must not share is redone after each restore (``_after_restore``): the ``random``
seed, the AWS credentials and pooled connections of the store clients, Powertools' secret cache
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html).

Structured JSON logs and EMF metrics come from Powertools (Logger, Metrics): one log line and
``Requests``/``Responses5xx``/... per request, ``ColdStart`` once per environment. Tracer is not
used: it needs aws-xray-sdk, which the layers leave out (patching botocore at import adds to
every cold start); the template's active X-Ray tracing still records each invocation's segments.

``lifespan="off"``: Mangum would otherwise run the ASGI lifespan on every invocation.
HTTP API (payload v2, base64 multipart bodies) and REST API events are both understood by Mangum;
a REST stage or custom-domain base path is stripped via ``api_gateway_base_path``.
"""

from __future__ import annotations

import random
import time
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from fashion_search.api import create_app
from fashion_search.api.deps import SearcherProvider
from fashion_search.runtime import build_searcher, limit_blas_threads
from fashion_search.settings import Settings
from mangum import Mangum
from snapshot_restore_py import register_after_restore

logger = Logger()  # service name: POWERTOOLS_SERVICE_NAME
metrics = Metrics()  # namespace: POWERTOOLS_METRICS_NAMESPACE
copy_config_to_registered_loggers(source_logger=logger, include={"fashion_search"})

limit_blas_threads()
settings = Settings()
app = create_app(settings)
try:
    app.state.searcher_provider.get().warm()
except Exception:  # logged, and retried lazily by the first request (see module docstring)
    logger.exception("model or stores failed to load at init; retrying on the first request")

_asgi = Mangum(app, lifespan="off", api_gateway_base_path=settings.api.api_gateway_base_path)


def _after_restore() -> None:
    """Run by the runtime in each environment restored from a SnapStart snapshot."""
    import boto3
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    random.seed()  # from os.urandom: every restored environment draws its own sequence
    # This environment's credentials (the snapshot holds the publishing one's) and no pooled
    # connection opened before the snapshot.
    boto3.setup_default_session()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    DEFAULT_PROVIDERS.clear()  # the providers hold boto3 clients made before the snapshot
    provider: SearcherProvider = app.state.searcher_provider
    try:
        old = provider.get()
        searcher = build_searcher(settings, embedder=old.embedder)
    except Exception:  # the first request rebuilds (and reports) instead
        logger.exception("reopening the store clients after restore failed")
        app.state.searcher_provider = SearcherProvider(settings)
        return
    app.state.searcher_provider = SearcherProvider(settings, searcher=searcher)
    logger.info("restored from snapshot", extra={"model_id": old.embedder.model_id})


register_after_restore(_after_restore)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    # Mangum types its own context protocol; Lambda's object is the same at run time.
    response: dict[str, Any] = _asgi(event, cast(Any, context))
    status = int(response.get("statusCode", 500))
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=f"Responses{status // 100}xx", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="HandlerLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    path = event.get("rawPath") or event.get("path")
    logger.info("request", extra={"path": path, "status": status, "ms": round(elapsed_ms, 1)})
    return response
