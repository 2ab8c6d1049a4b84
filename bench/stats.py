"""Small statistics over timing samples (nearest-rank percentiles, no interpolation)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of a non-empty sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summary_us(samples_ns: Sequence[int]) -> dict[str, float | int]:
    """p50/p99/mean/max in microseconds of samples taken in nanoseconds."""
    micros = [s / 1000.0 for s in samples_ns]
    return {
        "n": len(micros),
        "p50_us": round(percentile(micros, 50), 1),
        "p99_us": round(percentile(micros, 99), 1),
        "mean_us": round(sum(micros) / len(micros), 1),
        "max_us": round(max(micros), 1),
    }
