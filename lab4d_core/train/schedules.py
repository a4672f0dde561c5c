"""Step-based schedules for loss weights and coarse-to-fine windows (lab4d's are fixed at 4k steps; ours scale with the run)."""

from __future__ import annotations

import math


def linear(progress: float, start: float, end: float, begin: float = 0.0, finish: float = 1.0) -> float:
    """Linear from ``start`` to ``end`` while progress goes from ``begin`` to ``finish`` (fractions of training)."""
    t = min(max((progress - begin) / max(finish - begin, 1e-12), 0.0), 1.0)
    return start + t * (end - start)


def log_linear(progress: float, start: float, end: float, begin: float = 0.0, finish: float = 1.0) -> float:
    """Geometric interpolation: lab4d ramps the eikonal weight x1 -> x100 this way."""
    return math.exp(linear(progress, math.log(start), math.log(end), begin, finish))
