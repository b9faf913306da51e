"""``runtime``: what a process gets from its settings — one model load shared by the searcher and
the ingestor, the Powertools ledger for the ingest function in AWS (moto + the Pinecone test
server), the stores released on close, and a wrong model path refused before anything is
written."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import fashion_search.model.loader as loader
import pytest
from fashion_search.errors import ConfigError
from fashion_search.ingest.events import BlobEvent, EventKind, hex_token
from fashion_search.ingest.ledger import PowertoolsLedger
from fashion_search.ingest.outcome import OutcomeReason, OutcomeStatus
from fashion_search.ingest.triggers.folder import created_event
from fashion_search.model.embedder import OnnxClipEmbedder
from fashion_search.runtime import build_ingestor, build_searcher, open_runtime
from fashion_search.settings import Settings

from tests.fixtures.ingest import jpeg_bytes

PINECONE_KEY = "test-key"  # the key the Pinecone test server accepts


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ``.env`` from the working directory: run where there is none."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every model load of the test, by bundle."""
    seen: list[Path] = []
    real = loader.load_embedder

    def counting(settings: Settings) -> OnnxClipEmbedder:
        seen.append(settings.model.bundle)
        return real(settings)

    monkeypatch.setattr(loader, "load_embedder", counting)
    return seen


def embedded(data_dir: Path, bundle: Path) -> Settings:
    return Settings.model_validate(
        {"embedded": {"data_dir": data_dir}, "model": {"bundle": bundle, "intra_op_threads": 1}}
    )


def test_the_embedded_home_searches_what_its_ingestor_indexed_with_one_model_load(
    tmp_path: Path, tiny_bundle: Path, loads: list[Path]
) -> None:
    settings = embedded(tmp_path / "data", tiny_bundle)
    with open_runtime(settings) as runtime:
        ingestor, searcher = runtime.ingestor(), runtime.searcher()
        root = settings.embedded.images_dir
        for name, seed in (("red.jpg", 1), ("blue.jpg", 2)):
            (root / name).write_bytes(jpeg_bytes(seed))
        events = [created_event(root, name) for name in ("red.jpg", "blue.jpg")]
        outcomes = ingestor.handle([e for e in events if e is not None])
        assert [o.status for o in outcomes] == [OutcomeStatus.INDEXED] * 2
        hits = searcher.by_text("a shirt", top_k=5).hits
        assert {h.image_id for h in hits} == {"red", "blue"}
        assert searcher.embedder is ingestor.embedder
    assert loads == [tiny_bundle]


def test_a_server_loads_the_model_once_and_a_restore_reuses_it(
    tmp_path: Path, tiny_bundle: Path, loads: list[Path]
) -> None:
    settings = embedded(tmp_path / "data", tiny_bundle)
    first = build_searcher(settings)
    again = build_searcher(settings, embedder=first.embedder)  # SnapStart's after-restore hook
    try:
        assert again.embedder is first.embedder and again.stores is not first.stores
        assert loads == [tiny_bundle]
    finally:
        first.stores.close()
        again.stores.close()


def _open_files_under(folder: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while we listed
            continue
        if target.startswith(str(folder.resolve())):
            found.append(target)
    return found


def test_closing_the_runtime_releases_the_stores(tmp_path: Path, tiny_bundle: Path) -> None:
    data = tmp_path / "data"
    settings = embedded(data, tiny_bundle)
    with open_runtime(settings) as runtime:
        root = settings.embedded.images_dir
        (root / "a.jpg").write_bytes(jpeg_bytes(1))
        event = created_event(root, "a.jpg")
        assert event is not None
        assert runtime.ingestor().handle([event])[0].status is OutcomeStatus.INDEXED
        assert (data / "catalog.sqlite-wal").exists()  # the catalog is open (WAL mode)
    # The last connection closed: SQLite checkpointed and removed its write-ahead log.
    assert not (data / "catalog.sqlite-wal").exists()
    if sys.platform == "linux":
        assert _open_files_under(data) == []
    with open_runtime(settings) as reopened:  # what was written is there for the next process
        assert reopened.stores.catalog.get("a") is not None
        assert reopened.stores.vectors.count() == 1


def test_a_wrong_model_path_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(ConfigError, match="FASHION_SEARCH_MODEL__BUNDLE"):
        open_runtime(embedded(data, tmp_path / "no-such-bundle"))
    assert not data.exists()


def aws_settings(bundle: Path, pinecone_host: str, **aws: Any) -> Settings:
    return Settings.model_validate(
        {
            "home": "aws",
            "model": {"bundle": bundle, "intra_op_threads": 1},
            "aws": {
                "region": "us-east-1",
                "bucket": "fashion-search-test-images",
                "table": "fashion-search-test-catalog",
                "pinecone_index": "default",
                "pinecone_api_key": PINECONE_KEY,
                "pinecone_host": pinecone_host,
                **aws,
            },
        }
    )


@pytest.fixture
def aws_ready(s3_bucket: str, dynamodb_catalog_table: str, pinecone_server: str) -> str:
    return pinecone_server


def _uploaded(settings: Settings, key: str, data: bytes) -> BlobEvent:
    with open_runtime(settings) as runtime:
        runtime.stores.blobs.put(key, data, content_type="image/jpeg")
        info = runtime.stores.blobs.head(key)
    assert info is not None
    bucket = settings.aws.bucket
    return BlobEvent(EventKind.CREATED, key, bucket, info.etag, ordering_token=hex_token(1))


def test_the_ingest_function_in_aws_claims_each_event_in_the_powertools_ledger(
    aws_ready: str, tiny_bundle: Path, dynamodb_client: Any, idempotency_table: str
) -> None:
    settings = aws_settings(tiny_bundle, aws_ready, idempotency_table=idempotency_table)
    event = _uploaded(settings, "images/a.jpg", jpeg_bytes(1))
    ingestor = build_ingestor(settings, idempotent=True)
    try:
        assert isinstance(ingestor.ledger, PowertoolsLedger)
        assert ingestor.handle([event])[0].status is OutcomeStatus.INDEXED
        replay = ingestor.handle([event])[0]  # SQS delivered it again
        assert (replay.status, replay.code) == (OutcomeStatus.SKIPPED, OutcomeReason.LEDGER_DONE)
        records = dynamodb_client.scan(TableName=idempotency_table)["Items"]
        assert [r["status"]["S"] for r in records] == ["COMPLETED"]
    finally:
        ingestor.stores.close()


def test_tools_that_redrive_on_purpose_go_without_the_ledger(
    aws_ready: str, tiny_bundle: Path, dynamodb_client: Any, idempotency_table: str
) -> None:
    settings = aws_settings(tiny_bundle, aws_ready, idempotency_table=idempotency_table)
    event = _uploaded(settings, "images/a.jpg", jpeg_bytes(1))
    ingestor = build_ingestor(settings)  # reconcile, ingest, load, watch
    try:
        assert ingestor.ledger is None
        assert ingestor.handle([event])[0].status is OutcomeStatus.INDEXED
        replay = ingestor.handle([event])[0]
        # The catalog's own check caught it.
        assert (replay.status, replay.code) == (
            OutcomeStatus.SKIPPED,
            OutcomeReason.ALREADY_INDEXED,
        )
        assert dynamodb_client.scan(TableName=idempotency_table)["Items"] == []
    finally:
        ingestor.stores.close()


def test_without_an_idempotency_table_the_function_warns_and_relies_on_the_catalog(
    aws_ready: str, tiny_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = aws_settings(tiny_bundle, aws_ready)
    with caplog.at_level(logging.WARNING, logger="fashion_search.runtime"):
        ingestor = build_ingestor(settings, idempotent=True)
    try:
        assert ingestor.ledger is None
        assert "no idempotency table configured" in caplog.text
    finally:
        ingestor.stores.close()
