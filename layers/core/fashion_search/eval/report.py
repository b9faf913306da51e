"""The evaluation's outputs: a console table, a Markdown report and a bar chart (PNG, drawn
with Pillow so no plotting library is needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from fashion_search.eval.protocol import TaskResult

# (column, the task's metric) shown for every task; Marqo reports R@1/R@10/MRR for text and
# P@1/P@10/MRR for category tasks.
COLUMNS: tuple[str, ...] = ("R@1", "R@5", "R@10", "P@1", "P@10", "MRR")


def table(results: Sequence[TaskResult]) -> str:
    head = f"{'task':<40} {'n':>6} " + " ".join(f"{c:>6}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        row = r.as_row()
        cells = " ".join(f"{float(row.get(c, 0.0)):>6.3f}" for c in COLUMNS)
        lines.append(f"{r.task:<40} {r.scores.queries:>6} {cells}")
    return "\n".join(lines)


def markdown(
    sections: Mapping[str, Sequence[TaskResult]],
    *,
    title: str,
    notes: Sequence[str],
    plot: str | None,
) -> str:
    out = [f"# {title}", ""]
    out += [f"- {n}" for n in notes]
    out.append("")
    for name, results in sections.items():
        out += [f"## {name}", "", "| task | queries | " + " | ".join(COLUMNS) + " |"]
        out.append("|---|---:|" + "---:|" * len(COLUMNS))
        for r in results:
            row = r.as_row()
            cells = " | ".join(f"{float(row.get(c, 0.0)):.3f}" for c in COLUMNS)
            out.append(f"| {r.task} | {r.scores.queries} | {cells} |")
        out.append("")
    if plot:
        out += [f"![retrieval quality]({plot})", ""]
    return "\n".join(out)


_PALETTE = ((66, 103, 178), (232, 125, 49), (90, 170, 90), (200, 70, 80), (140, 100, 180))


def bar_chart(
    sections: Mapping[str, Sequence[TaskResult]], path: Path, *, metric: str = "R@1"
) -> Path:
    """Grouped bars: one group per task, one bar per section (subset), heights = ``metric``
    (P@1 for tasks without a recall-style meaning is the same number at k=1)."""
    names = list(sections)
    tasks: list[str] = []
    for results in sections.values():
        tasks += [r.task for r in results if r.task not in tasks]
    w, h, left, bottom, top = 120 * max(1, len(tasks)) + 80, 360, 50, 90, 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    plot_h = h - bottom - top
    for tick in range(0, 11, 2):
        y = top + plot_h * (1 - tick / 10)
        d.line([(left, y), (w - 10, y)], fill=(225, 225, 225))
        d.text((8, y - 6), f"{tick / 10:.1f}", fill="black", font=font)
    group = (w - left - 20) / max(1, len(tasks))
    bar = group * 0.8 / max(1, len(names))
    for ti, task in enumerate(tasks):
        x0 = left + 10 + ti * group
        for si, name in enumerate(names):
            result = next((r for r in sections[name] if r.task == task), None)
            if result is None:
                continue
            value = float(result.as_row().get(metric, 0.0))
            bx = x0 + si * bar
            d.rectangle([bx, top + plot_h * (1 - value), bx + bar - 2, top + plot_h],
                        fill=_PALETTE[si % len(_PALETTE)])  # fmt: skip
        label = task.replace(" (", "\n(")
        d.multiline_text((x0, h - bottom + 8), label, fill="black", font=font)
    for si, name in enumerate(names):
        x = left + si * 140
        d.rectangle([x, 10, x + 12, 22], fill=_PALETTE[si % len(_PALETTE)])
        d.text((x + 18, 10), f"{name} ({metric})", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
