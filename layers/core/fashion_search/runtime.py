"""The composition root: the one place that turns ``Settings`` into a working process.

Every entry point (the two Lambda handlers, the CLI, the demo, the benchmarks) asks this module
for what it needs instead of wiring it again:

- ``open_runtime(settings)``: the model and the home's stores (``home.open_stores``), as a
  ``Runtime`` that hands out a ``Searcher`` and an ``Ingestor`` sharing that one model load;
  ``close()`` releases the stores.
- ``build_searcher`` / ``build_ingestor``: the same for a process that needs only one of them.
- ``event_ledger``: the ingest idempotency ledger of the home.
- ``limit_blas_threads``: the process setting of a process that serves queries.

The model, the stores and the ingest core are imported inside the functions, so the API Lambda
that imports this module does not import the ingest pipeline, and the embedded home never
imports boto3 (``home.py`` keeps the same rule for the adapters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fashion_search.home import Stores, open_stores
from fashion_search.settings import Settings
from fashion_search.stores.port import Closeable

if TYPE_CHECKING:
    from fashion_search.ingest.ledger import EventLedger
    from fashion_search.ingest.pipeline import Ingestor
    from fashion_search.model.base import Embedder
    from fashion_search.search import Searcher

log = logging.getLogger(__name__)


def limit_blas_threads() -> None:
    """One BLAS thread in a process that serves queries (call once, from its entry point).

    After a threaded matrix-vector product OpenBLAS's worker threads spin, and on a 2-vCPU
    Lambda they take the cores from the next onnxruntime run (measured in docs/api.md: search
    p50 103 -> 75 ms in an interleaved A/B). One thread scans 44k x 512 in about 3 ms.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the API is only slower
        return
    threadpool_limits(limits=1, user_api="blas")


@dataclass
class Runtime(Closeable):
    """One model and one home's stores; the searcher and the ingestor it builds share both."""

    settings: Settings
    embedder: Embedder
    stores: Stores

    def searcher(self) -> Searcher:
        from fashion_search.search import Searcher

        return Searcher(self.stores, self.embedder, settings=self.settings)

    def ingestor(self, *, ledger: EventLedger | None = None) -> Ingestor:
        from fashion_search.ingest.pipeline import Ingestor

        return Ingestor(self.stores, self.embedder, settings=self.settings, ledger=ledger)

    def close(self) -> None:
        """Release the stores' connections and files (the model holds neither)."""
        self.stores.close()


def open_runtime(
    settings: Settings, *, embedder: Embedder | None = None, load_now: bool = False
) -> Runtime:
    """The configured model (or ``embedder``, already loaded: nothing is loaded again) and the
    stores of ``settings.home`` at the model's dimension.

    ``load_now`` opens both ONNX sessions and the tokenizer here (a server's cold start) instead
    of on the first use. Raises ``ConfigError``/``BundleError`` naming what is missing."""
    if embedder is None:
        # Looked up on the module at call time, so a test can count the loads.
        from fashion_search.model import loader

        model = loader.load_embedder(settings)
        if load_now:
            model.load()
        embedder = model
    return Runtime(settings, embedder, open_stores(settings, dimension=embedder.dim))


def build_searcher(settings: Settings, *, embedder: Embedder | None = None) -> Searcher:
    """The searcher of a serving process: the model loaded now (not inside the first query).

    With ``embedder`` only the stores are opened: a SnapStart restore reopens its store clients
    around the model the snapshot kept."""
    return open_runtime(settings, embedder=embedder, load_now=True).searcher()


def build_ingestor(settings: Settings, *, idempotent: bool = False) -> Ingestor:
    """The ingestor of a trigger. ``idempotent``: claim each event in ``event_ledger`` first —
    for the ingest function, whose events S3/SQS may deliver twice. Tools that re-drive events
    on purpose (``reconcile``, ``ingest``, ``load``, ``watch``) go without: a ledger would skip
    a re-drive of an event it saw completed."""
    ledger = event_ledger(settings) if idempotent else None
    return open_runtime(settings).ingestor(ledger=ledger)


def event_ledger(settings: Settings) -> EventLedger | None:
    """Powertools' idempotency persistence on DynamoDB (``aws.idempotency_table``, which the
    template sets for the ingest function). Without the table there is none: the catalog's
    conditional writes (DynamoDB ``ConditionExpression``, SQLite ``BEGIN IMMEDIATE``) still turn
    a replay into a no-op; the ledger also keeps two workers from embedding one event at once
    (docs/ingest.md, "Idempotency")."""
    table = settings.aws.idempotency_table
    if not table:
        log.warning("no idempotency table configured: replays are caught by the catalog only")
        return None
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from fashion_search.ingest.ledger import PowertoolsLedger

    client = boto3.client(
        "dynamodb", region_name=settings.aws.region, endpoint_url=settings.aws.endpoint_url
    )
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
    return PowertoolsLedger(persistence, function_name="ingest")
