"""A few Prometheus metrics, kept in process and rendered in the text exposition format.

Small on purpose: counters and one histogram with fixed labels are all the demo
application needs, and they are easy to check in a unit test.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from typing import TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Request latencies of a CQL-backed API: from sub-millisecond to the retry window.
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def escape_label(value: str) -> str:
    """Escape a label value as the exposition format requires."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(names: Sequence[str], values: Sequence[str], extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*zip(names, values, strict=True), *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs) + "}"


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Counter:
    """A monotonically increasing counter with optional labels."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        if not self.labels:
            self._values[()] = 0.0

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        if len(label_values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}")
        with self._lock:
            self._values[label_values] = self._values.get(label_values, 0.0) + amount

    def value(self, *label_values: str) -> float:
        with self._lock:
            return self._values.get(label_values, 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{format_labels(self.labels, k)} {format_value(v)}" for k, v in items]


class Gauge(Counter):
    """A value that is set rather than incremented."""

    kind = "gauge"

    def set(self, *label_values: str, value: float) -> None:
        with self._lock:
            self._values[label_values] = value


class Histogram:
    """A cumulative histogram with fixed buckets and optional labels."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError("buckets must be a non-empty increasing sequence")
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self.buckets = tuple(float(b) for b in buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *label_values: str) -> None:
        if len(label_values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}")
        with self._lock:
            # counts per bucket (non-cumulative), then +Inf count, then sum
            series = self._series.setdefault(label_values, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
                    break
            else:
                series[len(self.buckets)] += 1
            series[-1] += value

    def count(self, *label_values: str) -> int:
        with self._lock:
            series = self._series.get(label_values)
            return 0 if series is None else int(sum(series[:-1]))

    def samples(self) -> list[str]:
        lines = []
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for key, series in items:
            cumulative = 0.0
            for bound, count in zip((*self.buckets, math.inf), series[:-1], strict=True):
                cumulative += count
                labels = format_labels(self.labels, key, [("le", format_value(bound))])
                lines.append(f"{self.name}_bucket{labels} {format_value(cumulative)}")
            lines.append(f"{self.name}_sum{format_labels(self.labels, key)} {format_value(series[-1])}")
            lines.append(f"{self.name}_count{format_labels(self.labels, key)} {format_value(cumulative)}")
        return lines


_Metric = TypeVar("_Metric", bound="Counter | Histogram")


class Registry:
    """Holds metrics and renders them all."""

    def __init__(self) -> None:
        self._metrics: list[Counter | Histogram] = []

    def register(self, metric: _Metric) -> _Metric:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        out: list[str] = []
        for metric in self._metrics:
            out.append(f"# HELP {metric.name} {metric.help}")
            out.append(f"# TYPE {metric.name} {metric.kind}")
            out.extend(metric.samples())
        return "\n".join(out) + "\n"


class AppMetrics:
    """The demo application's metrics."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.requests = self.registry.register(
            Counter(
                "zdmkit_demo_app_requests_total",
                "HTTP requests served, by method, route template and status code.",
                ("method", "route", "code"),
            )
        )
        self.errors = self.registry.register(
            Counter(
                "zdmkit_demo_app_request_errors_total",
                "HTTP requests answered with a 5xx status, by method and route template.",
                ("method", "route"),
            )
        )
        self.latency = self.registry.register(
            Histogram(
                "zdmkit_demo_app_request_duration_seconds",
                "Time to answer an HTTP request, by method and route template.",
                ("method", "route"),
            )
        )
        self.db_retries = self.registry.register(
            Counter(
                "zdmkit_demo_app_db_retries_total",
                "CQL statements re-sent by the application after a transient failure, by operation.",
                ("operation",),
            )
        )
        self.db_failures = self.registry.register(
            Counter(
                "zdmkit_demo_app_db_failures_total",
                "CQL operations that failed after every retry, by operation.",
                ("operation",),
            )
        )
        self.connected = self.registry.register(
            Gauge(
                "zdmkit_demo_app_cluster_connected",
                "1 when the application holds a CQL session, by connection mode.",
                ("mode",),
            )
        )

    def render(self) -> str:
        return self.registry.render()
