"""The CLI as a new user meets it: usage errors are a usage message and exit 2, never a
traceback; exit codes survive; every help page (also of commands added later) reads cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fashion_search.cli import build, main

CONSOLE_SCRIPT = Path(sys.executable).with_name("fashion-search")


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user types it, in ``cwd``."""
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "100", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["load"], "Missing argument 'STYLES_CSV'"),
        (["serve", "--port", "abc"], "Invalid value for '--port'"),
        (["load", "nonexistent.csv", "nowhere/"], "'nonexistent.csv' does not exist"),
        (["ingest", "nowhere"], "'nowhere' does not exist"),
    ],
)
def test_usage_errors_are_a_usage_message_and_exit_2(
    args: list[str], says: str, tmp_path: Path
) -> None:
    done = _cli(args, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    usage = "Usage: fashion-search" + ("" if args[0] == "frobnicate" else f" {args[0]}")
    assert usage in done.stderr
    assert says in done.stderr and "--help' for help" in done.stderr
    assert not any(tmp_path.iterdir()), "nothing may be created before the arguments are valid"


def test_an_error_that_exits_2_exits_2(tmp_path: Path) -> None:
    done = _cli(["watch"], tmp_path, FASHION_SEARCH_HOME="aws")
    assert done.returncode == 2
    assert "watch is for the embedded home" in done.stderr and "Traceback" not in done.stderr


def test_a_folder_that_cannot_be_made_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["demo-catalog", "--out", str(blocker / "sub"), "--products", "1"])
    assert exc.value.code == 1
    assert capsys.readouterr().err.startswith("error: Not a directory")


def test_reconcile_and_reindex_refuse_a_folder_without_a_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FASHION_SEARCH_HOME", "embedded")
    monkeypatch.delenv("FASHION_SEARCH_EMBEDDED__DATA_DIR", raising=False)
    for argv in (["reconcile"], ["reindex", "--model-id", "m", "--dimension", "4"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "no embedded home in" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group of the CLI, with the words that reach it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


COMMANDS = [path for path, _ in _commands(build())]


def test_every_command_is_covered() -> None:
    assert {("load",), ("ingest",), ("demo",), ("model", "info"), ("aws", "env")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "fashion-search")
def test_help_pages_read_cleanly(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    main([*path, "--help"])  # exit status 0: returns
    page = capsys.readouterr().out
    assert f"Usage: fashion-search {' '.join(path)}".rstrip() in page
    assert "{" not in page, "a {placeholder} in the help page"
    assert "<bool>" not in page, "an on/off flag shown as taking a value"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "fashion-search")
def test_every_summary_is_one_line(path: tuple[str, ...]) -> None:
    command = dict(_commands(build()))[path]
    summary = (command.help or "").strip().split("\n\n")[0]
    assert summary and "\n" not in summary, f"{path}: the first paragraph is the summary"


@pytest.mark.parametrize("path", [p for p in COMMANDS if p], ids=" ".join)
def test_an_unknown_option_is_a_usage_error(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*path, "--no-such-option"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Usage: fashion-search" in err and "Traceback" not in err


def test_aws_errors_are_a_message_not_a_botocore_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("boto3")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "FASHION_SEARCH_AWS__REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    with pytest.raises(SystemExit) as exc:
        main(["aws", "env"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: AWS: You must specify a region.") and "--region" in err
    monkeypatch.setenv("AWS_DEFAULT_REGION", "")  # botocore: a plain ValueError
    with pytest.raises(SystemExit) as exc:
        main(["aws", "env"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: AWS: Invalid endpoint")


def test_a_prompt_without_input_is_aborted_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "aws", "put-secret", "--region", "us-east-1"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "aborted" in done.stderr and "Traceback" not in done.stderr


def test_a_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["serve", "--port", "99999"], ["demo", "--ui-port", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "Invalid value for '--" in capsys.readouterr().err
