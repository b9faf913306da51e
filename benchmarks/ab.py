"""Side-by-side timing for the benchmarks: the sides take turns, several rounds, min and median.

On a shared machine the load moves under a benchmark; timing side A and then side B lets that
drift decide the verdict. Here every round runs every side once, the order rotating from round
to round (AB, BA, AB, ...: a linear drift cancels), and each side's figure is its min and median
over the rounds. Ratios are taken between the sides' medians (and mins), with the 1-minute load
average at the start and end of the comparison printed beside them.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from typing import Any


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def alternate(
    sides: Mapping[str, Callable[[], float]], rounds: int, *, warm: bool = True
) -> dict[str, Any]:
    """``sides[name]()`` measures one round and returns its figure (a time or a rate).

    Returns ``{"sides": {name: {"rounds", "min", "max", "median"}}, "load": [start, end]}``."""
    names = list(sides)
    if warm:
        for name in names:
            sides[name]()
    figures: dict[str, list[float]] = {name: [] for name in names}
    load_start = load_average()
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            figures[name].append(float(sides[name]()))
    return {
        "sides": {name: summary(values) for name, values in figures.items()},
        "load": [load_start, load_average()],
    }


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "rounds": [round(v, 4) for v in values],
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "median": round(statistics.median(values), 4),
    }


def ratio(result: dict[str, Any], a: str, b: str, *, lower_is_better: bool) -> dict[str, float]:
    """How many times better side ``a`` is than side ``b`` (> 1: ``a`` wins), by median and by
    the best round of each (min for times, max for rates)."""
    sa, sb = result["sides"][a], result["sides"][b]
    if lower_is_better:  # times: b's over a's
        sa, sb = sb, sa
    best = "min" if lower_is_better else "max"
    return {"median": round(sa["median"] / sb["median"], 3), best: round(sa[best] / sb[best], 3)}


def load_note(result: dict[str, Any]) -> str:
    start, end = result["load"]
    return f"load {start:.2f}->{end:.2f}"
