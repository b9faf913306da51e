"""``reindex``: a vector index rebuilt from the catalog alone answers like the original."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fashion_search.cli import main
from fashion_search.errors import InvalidInput
from fashion_search.home import Stores
from fashion_search.ingest.documents import document_vector
from fashion_search.stores.embedded.vector_index import AnnParams, EmbeddedVectorIndex
from fashion_search.transfer import reindex
from fashion_search.types import ItemStatus, VectorRecord

from tests.unit.transfer.home import Home, filled_home

QUERIES = ("a red shirt", "blue jeans", "black dress", "white")
FILTERS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"baseColour": {"$eq": "Red"}},
    {"year": {"$gte": 2011}, "articleType": {"$in": ["Shirts", "Jeans"]}},
)


class NoBlobs:
    """Any blob access fails the test: reindex must not read images."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"reindex touched the blob store ({name})")


@pytest.fixture
def source(tmp_path: Path, tiny_embedder: Any) -> Iterator[Home]:
    home = filled_home(tmp_path / "src", tiny_embedder)
    yield home
    home.close()


def _rebuilt(source: Home, path: Path, ann: AnnParams | None = None) -> Stores:
    vectors = EmbeddedVectorIndex(path, dimension=source.stores.vectors.dimension, ann=ann)
    return Stores(NoBlobs(), source.stores.catalog, vectors, namespace="", ingest_prefix="")  # type: ignore[arg-type]


def _results(stores: Stores, vectors: list[np.ndarray]) -> list[list[tuple[str, float]]]:
    out = []
    for vector in vectors:
        for flt in FILTERS:
            matches = stores.vectors.query(vector, top_k=5, filter=flt)
            out.append([(m.id, round(m.score, 5)) for m in matches])
    return out


@pytest.mark.parametrize("engine", ["exact", "ann"])
def test_reindex_into_an_empty_index_gives_the_same_results(
    source: Home, tmp_path: Path, tiny_embedder: Any, engine: str
) -> None:
    # "ann": the rebuilt index is over its (here tiny) threshold, so its graph answers.
    ann = AnnParams(min_vectors=1, background=False) if engine == "ann" else None
    rebuilt = _rebuilt(source, tmp_path / "rebuilt", ann)
    assert rebuilt.vectors.count() == 0
    seen: list[int] = []
    report = reindex(
        rebuilt, model_id=tiny_embedder.model_id, batch_size=5, on_progress=seen.append
    )
    assert report.rebuilt == 12 and sum(seen) == 12
    assert (report.skipped_without_embedding, report.skipped_other_model) == (0, 0)

    probes = list(tiny_embedder.embed_texts(list(QUERIES)))
    probes += [it.embedding for it in source.stores.catalog.by_status(ItemStatus.INDEXED)][:4]
    before, after = _results(source.stores, probes), _results(rebuilt, probes)
    assert before == after
    assert any(len(r) == 5 for r in after) and any(0 < len(r) < 5 for r in after)
    ids = list(source.stores.vectors.iter_ids())
    original = source.stores.vectors.fetch(ids)
    copy = rebuilt.vectors.fetch(ids)
    assert {i: r.metadata for i, r in copy.items()} == {i: r.metadata for i, r in original.items()}
    assert rebuilt.vectors.engine() == engine  # type: ignore[attr-defined]
    rebuilt.vectors.close()  # type: ignore[attr-defined]


def test_skips_are_counted_and_prune_removes_ids_no_item_owns(
    source: Home, tmp_path: Path, tiny_embedder: Any
) -> None:
    catalog = source.stores.catalog
    first = next(iter(catalog.by_status(ItemStatus.INDEXED)))
    catalog.put(dataclasses.replace(first, image_id="other-model", model_id="another-model"))
    catalog.put(dataclasses.replace(first, image_id="no-embedding", embedding=None))
    rebuilt = _rebuilt(source, tmp_path / "rebuilt")
    unit = np.ones(rebuilt.vectors.dimension, dtype=np.float32)
    rebuilt.vectors.upsert([VectorRecord("orphan", unit), VectorRecord(first.image_id, unit)])

    report = reindex(rebuilt, model_id=tiny_embedder.model_id, prune=True)
    assert report.as_dict() == {
        "model_id": tiny_embedder.model_id,
        "dimension": tiny_embedder.dim,
        "rebuilt": 12,
        "skipped_without_embedding": 1,
        "skipped_other_model": 1,
        "deleted_not_in_catalog": 1,
        "refused": {"count": 0, "sample": {}},
    }
    ids = set(rebuilt.vectors.iter_ids())
    assert "orphan" not in ids and "other-model" not in ids and len(ids) == 12
    # The stale vector put under a real id was replaced by the catalog's product document.
    got = rebuilt.vectors.fetch([first.image_id])[first.image_id].values
    want = document_vector(first.embedding, first.text_embedding)
    assert first.text_embedding is not None and np.allclose(got, want, atol=1e-6)
    rebuilt.vectors.close()  # type: ignore[attr-defined]


def test_without_prune_foreign_ids_stay(source: Home, tmp_path: Path, tiny_embedder: Any) -> None:
    rebuilt = _rebuilt(source, tmp_path / "rebuilt")
    rebuilt.vectors.upsert([VectorRecord("orphan", np.ones(tiny_embedder.dim, np.float32))])
    reindex(rebuilt, model_id=tiny_embedder.model_id)
    assert "orphan" in set(rebuilt.vectors.iter_ids())
    rebuilt.vectors.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"batch_size": 0}, "batch_size"), ({"model_id": ""}, "model_id")]
)
def test_bad_arguments_are_named(source: Home, kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"model_id": "m", **kwargs}
    with pytest.raises(InvalidInput) as err:
        reindex(source.stores, **args)
    assert err.value.field == field


def test_cli_rebuilds_a_lost_index(
    source: Home,
    tiny_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = source.settings.embedded.data_dir
    expected = {
        i: r.values
        for i, r in source.stores.vectors.fetch(list(source.stores.vectors.iter_ids())).items()
    }
    source.close()
    import shutil

    shutil.rmtree(data_dir / "index")  # the index is lost; catalog and images stay
    monkeypatch.setenv("FASHION_SEARCH_EMBEDDED__DATA_DIR", str(data_dir))
    monkeypatch.setenv("FASHION_SEARCH_MODEL__BUNDLE", str(tiny_bundle))
    main(["reindex", "--batch-size", "4"])
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    assert summary["rebuilt"] == 12 and summary["skipped_other_model"] == 0
    index = EmbeddedVectorIndex(data_dir / "index", dimension=len(next(iter(expected.values()))))
    got = index.fetch(list(expected))
    assert set(got) == set(expected)
    assert all(np.allclose(got[i].values, v, atol=1e-6) for i, v in expected.items())
    index.close()


def test_a_vector_the_index_refuses_is_named_and_the_rest_rebuilt(
    source: Home, tmp_path: Path, tiny_embedder: Any
) -> None:
    catalog = source.stores.catalog
    first = next(iter(catalog.by_status(ItemStatus.INDEXED)))
    zero = np.zeros(tiny_embedder.dim, dtype=np.float32)  # cosine cannot take it
    catalog.put(dataclasses.replace(first, image_id="zero", embedding=zero))
    rebuilt = _rebuilt(source, tmp_path / "rebuilt")
    report = reindex(rebuilt, model_id=tiny_embedder.model_id, batch_size=50)
    assert report.rebuilt == 12 and list(report.refused) == ["zero"]
    assert "zero" in report.refused["zero"] and rebuilt.vectors.count() == 12
    rebuilt.vectors.close()  # type: ignore[attr-defined]
