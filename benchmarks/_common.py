"""Helpers shared by the benchmark scripts: pinning to one core, timing, a markdown table.

The scripts run as ``python benchmarks/<script>.py``, so this module is imported as ``_common``
(the script's folder is first on ``sys.path``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def pin_one_core() -> str:
    """Pin this process to its lowest allowed core (where the OS allows it); say what happened."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "unpinned"


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls of ``fn``, and the last call's result."""
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 1.0 else f"{seconds:,.2f} s"


def md_table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: tuple[bool, ...]) -> str:
    """A markdown table with padded columns, right-aligned where ``right`` says so."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if r else "-" * (w + 2) for w, r in zip(widths, right, strict=True)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
