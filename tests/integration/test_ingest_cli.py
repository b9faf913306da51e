"""``fashion-search load | ingest | reconcile`` on an embedded home in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fashion_search.cli import main
from fashion_search.home import open_stores
from fashion_search.settings import Settings
from fashion_search.types import ItemStatus

from tests.fixtures.ingest import jpeg_bytes

HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
    "productDisplayName\n"
)


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_bundle: Path) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("FASHION_SEARCH_HOME", "embedded")
    monkeypatch.setenv("FASHION_SEARCH_EMBEDDED__DATA_DIR", str(data))
    monkeypatch.setenv("FASHION_SEARCH_MODEL__BUNDLE", str(tiny_bundle))
    monkeypatch.setenv("FASHION_SEARCH_MODEL__INTRA_OP_THREADS", "1")
    return data


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    main(argv)
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])  # type: ignore[no-any-return]


def _run_incomplete(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], str]:
    """A run that leaves items not loaded or not indexed: exit 1, the summary on stdout, the
    problems on stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    captured = capsys.readouterr()
    out = captured.out
    return json.loads(out[out.index("{") :]), captured.err


def test_load_then_reconcile(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "kaggle" / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(4):
        (images / f"{100 + i}.jpg").write_bytes(jpeg_bytes(i))
        rows.append(f"{100 + i},Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Shirt {i}, slim\n")
    rows.append("999,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,No image\n")
    styles = tmp_path / "kaggle" / "styles.csv"
    styles.write_text(HEADER + "".join(rows), encoding="utf-8")

    result, err = _run_incomplete(
        ["load", str(styles), str(images), "--limit", "10", "--workers", "2"], capsys
    )
    assert "not loaded: 1 catalog rows" in err and "image missing x1: ids 999" in err
    assert result["load"] == {
        "loaded": 4,
        "unchanged": 0,
        "skipped": {},
        "failed": {"image missing": 1},
        "examples": {"image missing": ["999"]},
    }
    assert result["index"] == {"indexed": 4, "deleted": 0, "failed": 0, "skipped": 0, "retry": 0}

    again, _ = _run_incomplete(["load", str(styles), str(images)], capsys)
    assert again["load"]["unchanged"] == 4  # type: ignore[index]
    assert again["index"]["skipped"] == 4  # type: ignore[index]

    report = _run(["reconcile", "--dry-run"], capsys)
    assert report["orphan_vectors"] == {"count": 0, "sample": []}
    assert report["pending"] == {"count": 0, "sample": []}
    assert report["vectors"] == report["indexed"] == 4


def test_ingest_an_outside_folder_copies_it_in(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "photos"
    (src / "summer").mkdir(parents=True)
    (src / "summer" / "a b.jpg").write_bytes(jpeg_bytes(1))
    (src / "c.png.part").write_bytes(b"partial")
    result = _run(["ingest", str(src)], capsys)
    assert result["copied"] == 1 and result["indexed"] == 1
    assert (home / "images" / "summer" / "a b.jpg").is_file()

    settings = Settings()
    stores = open_stores(settings, dimension=16)
    item = stores.catalog.get("summer/a b")
    assert item is not None and item.status is ItemStatus.INDEXED
    for store in (stores.catalog, stores.vectors):
        getattr(store, "close", lambda: None)()


def test_ingest_inside_the_images_folder_indexes_in_place(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "images" / "new").mkdir(parents=True)
    (home / "images" / "new" / "x.jpg").write_bytes(jpeg_bytes(5))
    result = _run(["ingest", str(home / "images" / "new")], capsys)
    assert result["indexed"] == 1 and "copied" not in result


def test_ingest_of_a_missing_folder_is_a_clear_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ingest", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_ingest_exits_1_naming_the_refused_files_and_why(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    (src / "good.jpg").write_bytes(jpeg_bytes(1))
    for i in range(8):
        (src / f"broken{i}.jpg").write_bytes(b"not a picture at all")
    result, err = _run_incomplete(["ingest", str(src)], capsys)
    assert result["indexed"] == 1 and result["failed"] == 8
    assert "not indexed: 8 images (8 failed, 0 left to retry)" in err
    # One line per reason with the first five names, and how many more.
    assert "broken0.jpg, broken1.jpg, broken2.jpg, broken3.jpg, broken4.jpg and 3 more" in err
    assert "failed x8: " in err and "replace or remove those files" in err


def test_ingest_at_a_full_disk_says_so_and_exits_1(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first"
    first.mkdir()
    (first / "a.jpg").write_bytes(jpeg_bytes(1))
    _run(["ingest", str(first)], capsys)
    # The catalog's file may not grow by a page: SQLite itself answers SQLITE_FULL, exactly as on
    # a disk with 0 bytes free (where it also rolls the transaction back by itself).
    from fashion_search.stores.embedded.sqlite_catalog import SqliteCatalog

    real_conn = SqliteCatalog._conn

    def no_room(self: SqliteCatalog) -> Any:
        conn = real_conn(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(SqliteCatalog, "_conn", no_room)
    monkeypatch.setenv("FASHION_SEARCH_EMBEDDED__DATA_DIR", str(tmp_path / "new-home"))
    with pytest.raises(SystemExit) as exc:  # a home that cannot even be created
        main(["ingest", str(first)])
    assert exc.value.code == 1
    assert "error: the disk is full writing " in capsys.readouterr().err
    monkeypatch.setenv("FASHION_SEARCH_EMBEDDED__DATA_DIR", str(home))
    more = tmp_path / "more"
    more.mkdir()
    for i in range(40):  # enough rows to need a new page
        (more / f"p{i:02d}.jpg").write_bytes(jpeg_bytes(10 + i))
    result, err = _run_incomplete(["ingest", str(more)], capsys)
    assert result["retry"] > 0
    assert "cannot rollback" not in err
    assert f"the disk is full writing {home.resolve() / 'catalog.sqlite'}" in err
    assert "left to retry" in err and "p" in err and "and run the command again" in err


def test_watch_reports_what_its_catch_up_could_not_index_and_exits_1(
    home: Path, tmp_path: Path
) -> None:
    """The console script as an operator runs it: catch-up, stopped (kill), the list, exit 1."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (home / "images").mkdir(parents=True)
    (home / "images" / "ok.jpg").write_bytes(jpeg_bytes(3))
    (home / "images" / "torn.jpg").write_bytes(jpeg_bytes(4)[:40])
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("fashion-search")), "watch", "--settle", "0.1"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait for the catch-up to finish, then stop it
            line = proc.stdout.readline()
            if not line or line.startswith("watching "):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert "not indexed: 1 images (1 failed, 0 left to retry)" in err and "\n    torn.jpg\n" in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_file_written_to_a_full_device_says_the_disk_is_full(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    src = tmp_path / "photos"
    src.mkdir()
    (src / "a.jpg").write_bytes(jpeg_bytes(2))
    with pytest.raises(SystemExit) as exc:
        main(["ingest", str(src), "--json", "/dev/full"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "\nerror: the disk is full writing /dev/full" in err and "Traceback" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_load_onto_a_full_disk_is_one_reason_naming_the_images_folder(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every image write of the folder store lands on /dev/full, which refuses it with ENOSPC as
    a full disk does: the rows are reported under one reason that names the images folder."""
    import os

    from fashion_search.stores.embedded import folder_blobs

    def onto_a_full_disk(path: Path, data: bytes) -> None:
        fd = os.open("/dev/full", os.O_WRONLY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    monkeypatch.setattr(folder_blobs, "_write_synced", onto_a_full_disk)
    images = tmp_path / "kaggle" / "images"
    images.mkdir(parents=True)
    rows = []
    for i in range(7):
        (images / f"{200 + i}.jpg").write_bytes(jpeg_bytes(i))
        rows.append(f"{200 + i},Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Shirt {i}\n")
    styles = tmp_path / "kaggle" / "styles.csv"
    styles.write_text(HEADER + "".join(rows), encoding="utf-8")
    result, err = _run_incomplete(["load", str(styles), str(images)], capsys)
    (reason,) = result["load"]["failed"]
    assert reason.startswith(f"upload failed: the disk is full writing {home / 'images'} (")
    assert f"{reason} x7: ids 200, 201, 202, 203, 204 and 2 more" in err
