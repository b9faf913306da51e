"""The search API Lambda: the FastAPI app behind API Gateway through Mangum.

Everything heavy happens at import, once per container: settings, the ONNX model (both towers
opened and run once), the store clients. Lambda's init phase
runs at full CPU and before the first request's clock, so this beats loading lazily on the first
request (measured in docs/api.md, ``benchmarks/api.py``). If loading fails at import (a missing
setting, S3 unreachable) the error is logged and loading is retried on the next request, which
then answers with the API's JSON error shape instead of an opaque init failure.

``lifespan="off"``: Mangum would otherwise run the ASGI lifespan on every invocation.
HTTP API (payload v2, base64 multipart bodies) and REST API events are both understood by Mangum;
a REST stage or custom-domain base path is stripped via ``api_gateway_base_path``.
"""

from __future__ import annotations

import logging

from fashion_search.api import create_app
from fashion_search.api.deps import limit_blas_threads
from fashion_search.settings import Settings
from mangum import Mangum

logger = logging.getLogger("fashion_search.functions.api")

limit_blas_threads()
settings = Settings()
logging.getLogger().setLevel(settings.log_level)
app = create_app(settings)
try:
    app.state.searcher_provider.get().warm()
except Exception:  # logged, and retried lazily by the first request (see module docstring)
    logger.exception("model or stores failed to load at init; retrying on the first request")

handler = Mangum(app, lifespan="off", api_gateway_base_path=settings.api.api_gateway_base_path)
