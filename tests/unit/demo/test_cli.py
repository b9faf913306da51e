"""The commands as a user runs them: ``eval`` writes its report, ``model train`` writes a bundle
the runtime loads, ``--init`` refuses what it cannot fine-tune, ``demo-catalog`` writes files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fashion_search.cli import main
from fashion_search.demo.catalog import generate_catalog
from fashion_search.model.embedder import OnnxClipEmbedder


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("cat"), products=40)


def test_eval_prints_a_table_and_writes_a_report(
    catalog: Path, tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    main(["eval", "--catalog", str(catalog), "--model", str(tiny_bundle), "--out", str(out),
          "--subset", "all", "--subset", "test", "--json", str(tmp_path / "f.json")])  # fmt: skip
    printed = capsys.readouterr().out
    assert "text->image" in printed and "image->image (baseColour)" in printed
    report = (out / "eval.md").read_text()
    assert "## all" in report and "## test" in report and "![retrieval quality](eval.png)" in report
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads((tmp_path / "f.json").read_text())
    rows = {r["task"]: r for r in figures["sections"]["all"]}
    assert rows["text->image"]["queries"] == len(
        {ln.split(",")[-1] for ln in catalog.read_text().splitlines()[1:]}
    )
    assert all(0.0 <= r["MRR"] <= 1.0 for r in rows.values())


def test_eval_reports_a_missing_catalog_clearly(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--catalog", str(tmp_path / "nope.csv"), "--model", str(tiny_bundle)])
    assert exc.value.code == 2
    assert "catalog not found" in capsys.readouterr().err


def test_train_writes_a_bundle_the_runtime_loads(
    catalog: Path, tmp_path: Path, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "bundle"
    main(["model", "train", "--catalog", str(catalog), "--out", str(out), "--epochs", "1",
          "--batch-size", "16", "--threads", "1", "--json", str(tmp_path / "t.json")])  # fmt: skip
    assert "trained 2 steps" in capsys.readouterr().out
    embedder = OnnxClipEmbedder.from_bundle(out)
    assert embedder.embed_texts(["red dress"]).shape == (1, 128)
    info = json.loads((tmp_path / "t.json").read_text())
    assert set(info["heldout_metrics"]) <= {"test", "unseen"}
    with pytest.raises(SystemExit):
        main(
            [
                "model",
                "train",
                "--catalog",
                str(catalog),
                "--out",
                str(tmp_path / "x"),
                "--init",
                str(tiny_bundle),
            ]
        )
    assert "cannot be fine-tuned" in capsys.readouterr().err


def test_demo_catalog_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo-catalog", "--out", str(tmp_path), "--products", "5"])
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 5
    assert "wrote" in capsys.readouterr().out


def _bars_per_line(stderr: str) -> list[set[str]]:
    """The progress bars drawn on each output line (a bar redraws itself after a carriage
    return; another bar on the same line is the defect)."""
    lines = []
    for line in stderr.split("\n"):
        labels = {seg.split(":")[0].strip() for seg in line.split("\r") if "img" in seg}
        if labels:
            lines.append(labels)
    return lines


def test_demo_prepare_only_draws_its_bars_one_per_line(
    tmp_path: Path, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "demo"
    main(["demo", "--prepare-only", "--data-dir", str(data), "--products", "6",
          "--model", str(tiny_bundle)])  # fmt: skip
    captured = capsys.readouterr()
    assert "index holds 6 images" in captured.out
    assert "\x1b[A" not in captured.err  # no cursor-up: nothing is redrawn over another line
    bars = _bars_per_line(captured.err)
    assert all(len(labels) == 1 for labels in bars), bars
    assert {label for labels in bars for label in labels} == {"load catalog", "index images"}


def test_demo_prepare_only_exits_1_naming_what_was_not_indexed(
    tmp_path: Path, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = generate_catalog(tmp_path / "own", products=4)
    (own.parent / "images" / "10003.jpg").write_bytes(b"not a picture")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--prepare-only", "--data-dir", str(tmp_path / "demo"), "--catalog",
              str(own), "--model", str(tiny_bundle)])  # fmt: skip
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "not indexed: 1 images (1 failed, 0 left to retry)" in err
    assert "\n    10003.jpg\n" in err
