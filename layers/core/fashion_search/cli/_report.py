"""The end of a command that loads or ingests: which files did not make it and why, and exit 1.

Grouped by reason, so 580 images refused for one cause (a full disk) read as one line with the
first few file names, not 580 lines; capped, so a huge run stays readable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from fashion_search.ingest.kaggle.loader import LoadSummary
from fashion_search.ingest.outcome import IngestOutcome, OutcomeStatus

SHOWN_REASONS = 10
SHOWN_NAMES = 5
EXIT_INCOMPLETE = 1  # some items FAILED or are left to retry (2 is for usage and config errors)


def _names(names: Sequence[str], total: int) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    more = total - min(len(names), SHOWN_NAMES)
    return f"{shown} and {more} more" if more > 0 else shown


def ingest_problems(problems: Sequence[IngestOutcome]) -> list[str]:
    """Lines naming the files not indexed and why; empty when there are none."""
    if not problems:
        return []
    groups: dict[tuple[OutcomeStatus, str], list[str]] = {}
    for o in problems:
        groups.setdefault((o.status, o.reason or "no reason recorded"), []).append(o.event.key)
    failed = sum(1 for o in problems if o.status is OutcomeStatus.FAILED)
    retry = len(problems) - failed
    lines = [f"not indexed: {len(problems)} images ({failed} failed, {retry} left to retry)"]
    for (status, reason), keys in list(groups.items())[:SHOWN_REASONS]:
        lines.append(f"  {status.value} x{len(keys)}: {reason}")
        lines.append(f"    {_names(keys, len(keys))}")
    if len(groups) > SHOWN_REASONS:
        lines.append(f"  ... and {len(groups) - SHOWN_REASONS} more reasons")
    if retry:
        lines.append(
            "  retry: a temporary cause (a store, the disk): fix it and run the command again; "
            "what is already indexed is skipped"
        )
    if failed:
        lines.append(
            "  failed: refused for good and kept in the catalog as FAILED with the reason: "
            "replace or remove those files"
        )
    return lines


def load_problems(summary: LoadSummary) -> list[str]:
    """Lines naming the catalog rows not loaded and why; empty when there are none."""
    total = sum(summary.failed.values())
    if not total:
        return []
    lines = [f"not loaded: {total} catalog rows"]
    reasons = summary.failed.most_common()
    for reason, n in reasons[:SHOWN_REASONS]:
        lines.append(f"  {reason} x{n}: ids {_names(summary.examples.get(reason, []), n)}")
    if len(reasons) > SHOWN_REASONS:
        lines.append(f"  ... and {len(reasons) - SHOWN_REASONS} more reasons")
    return lines


def say(lines: Sequence[str]) -> None:
    for line in lines:
        typer.echo(line, err=True)


def finish(lines: Sequence[str]) -> None:
    """Print the problems (stderr) and exit 1 when there are any; return when there are none."""
    if lines:
        say(lines)
        raise typer.Exit(EXIT_INCOMPLETE)


def emit(data: dict[str, Any], json_path: Path | None) -> None:
    """Print the summary as JSON, and write it to ``json_path`` too when given."""
    text = json.dumps(data, indent=2, sort_keys=True)
    typer.echo(text)
    if json_path is not None:
        try:
            json_path.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:  # a failed write() names no file: name it for the message
            raise OSError(exc.errno, exc.strerror, str(json_path)) from exc
