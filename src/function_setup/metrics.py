"""The metrics sink the functions' domain code writes to, and two sinks besides Powertools'.

Powertools ``Metrics`` satisfies :class:`MetricsSink`; :class:`NullMetrics` is the default of a
part built without one, and tests and the benchmark pass :class:`RecordingMetrics`.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

#: The metric namespace both functions default to (template.yaml's MetricsNamespace default).
DEFAULT_NAMESPACE = "CognitoTokenProxy"


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None: ...


class NullMetrics:
    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        return None


class RecordingMetrics:
    """Counts metrics in memory (used by tests and the benchmark)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.values: dict[str, list[float]] = {}

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        if unit in (MetricUnit.Count, "Count"):
            self.counts[name] += int(value)
        self.values.setdefault(name, []).append(value)
