"""``migrate`` between two embedded homes (fast, no AWS): what it reports when it cannot copy
something whole. The AWS round trips are in tests/integration/test_transfer.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fashion_search.errors import InvalidInput
from fashion_search.transfer import migrate
from fashion_search.types import ItemStatus

from tests.unit.transfer.home import Home, filled_home, open_home

MAX_BYTES = 1024 * 1024


@pytest.fixture
def homes(tmp_path: Path, tiny_embedder: Any) -> Iterator[tuple[Home, Home]]:
    source = filled_home(tmp_path / "a", tiny_embedder)
    target = open_home(tmp_path / "b", dimension=tiny_embedder.dim)
    yield source, target
    source.close()
    target.close()


def test_what_cannot_be_copied_is_named_and_the_rest_is_copied(homes: tuple[Home, Home]) -> None:
    source, target = homes
    catalog = source.stores.catalog
    indexed = list(catalog.by_status(ItemStatus.INDEXED))
    lost, other = indexed[0], indexed[1]
    source.stores.blobs.delete(lost.key)  # the image vanished from the source folder
    assert other.embedding is not None
    catalog.put(dataclasses.replace(other, embedding=np.ones(8, np.float32), model_id="small"))

    report = migrate(
        source.stores, target.stores, max_blob_bytes=MAX_BYTES, batch_size=3, settle_s=()
    )
    assert not report.ok
    assert set(report.problems) == {lost.image_id, other.image_id}
    assert "missing" in report.problems[lost.image_id]
    assert "dimension" in report.problems[other.image_id]
    assert sum(report.items_copied.values()) == 14 and report.vectors_copied == 11
    verification = report.verification
    assert verification is not None and verification.counts_equal
    assert set(verification.vectors_wrong) == {other.image_id}
    assert verification.blobs_missing == [lost.image_id]
    got = target.stores.catalog.get(lost.image_id)
    assert got is not None and got.status is ItemStatus.INDEXED


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"batch_size": 0}, "batch_size"), ({"workers": 0}, "workers")]
)
def test_bad_arguments_are_named(
    homes: tuple[Home, Home], kwargs: dict[str, Any], field: str
) -> None:
    source, target = homes
    with pytest.raises(InvalidInput) as err:
        migrate(source.stores, target.stores, max_blob_bytes=MAX_BYTES, **kwargs)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "aws", "--to-data-dir", "x"], "--to-data-dir is for --to embedded"),
        (["--to", "embedded", "--from-data-dir", "x"], "--from-data-dir is for --to aws"),
        (["--to", "aws", "--from-data-dir", "{tmp}/nothing"], "no catalog.sqlite"),
    ],
)
def test_cli_names_a_wrong_direction_or_a_missing_source(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fashion_search.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["migrate", *(a.format(tmp=tmp_path) for a in argv), "--dimension", "16"])
    assert exited.value.code == 2 and message in capsys.readouterr().err
