"""The server's metrics in the Prometheus text exposition format (version 0.0.4), with no dependency.

Three kinds suffice here: :class:`Counter`, :class:`Gauge` (a value read when
scraped) and :class:`Histogram` (cumulative buckets, ``_sum`` and ``_count``).
Every metric is safe to update from the event loop and the batching thread at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "ServerMetrics"]

#: Seconds: from well under a millisecond (an idle server's overhead) to a long batch.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Texts in one forward call.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

Labels = tuple[tuple[str, str], ...]


def _labels(pairs: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in pairs]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count, one series per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current count of one label set (0 when never incremented)."""
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        if not items:
            items = [((), 0.0)]
        return [f"{self.name}{_labels(k)} {_number(v)}" for k, v in items]


class Gauge:
    """A value read from ``read`` when the metrics are scraped (queue depth, requests in flight)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.name = name
        self.help = help_text
        self._read = read

    def render(self) -> list[str]:
        return [f"{self.name} {_number(self._read())}"]


class Histogram:
    """Observations counted into cumulative buckets (``le``), with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.help = help_text
        self._bounds = (*sorted(buckets), math.inf)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            for i, bound in enumerate(self._bounds):
                if value <= bound:
                    self._counts[i] += 1
                    break
            self._sum += value

    @property
    def count(self) -> int:
        with self._lock:
            return sum(self._counts)

    def render(self) -> list[str]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        lines, running = [], 0
        for bound, n in zip(self._bounds, counts, strict=True):
            running += n
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {running}')
        lines.append(f"{self.name}_sum {_number(total)}")
        lines.append(f"{self.name}_count {running}")
        return lines


class ServerMetrics:
    """Every metric ``vecembed serve`` exposes on ``GET /metrics``."""

    def __init__(self, *, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.requests = Counter("vecembed_requests_total", "HTTP requests by endpoint and status code.")
        self.request_seconds = Histogram(
            "vecembed_request_duration_seconds", "Time to answer POST /v1/embeddings.", LATENCY_BUCKETS
        )
        self.queue_seconds = Histogram(
            "vecembed_queue_wait_seconds", "Time a request waited in the queue before its batch ran.", LATENCY_BUCKETS
        )
        self.batch_texts = Histogram("vecembed_batch_texts", "Texts per merged forward call.", BATCH_BUCKETS)
        self.batch_requests = Histogram("vecembed_batch_requests", "Requests merged into one call.", BATCH_BUCKETS)
        self.batch_seconds = Histogram(
            "vecembed_batch_duration_seconds", "Time of one merged embedding call.", LATENCY_BUCKETS
        )
        self.texts = Counter("vecembed_texts_embedded_total", "Texts embedded.")
        self.tokens = Counter("vecembed_tokens_embedded_total", "Tokens embedded (the model's tokenizer).")
        self.truncated = Counter("vecembed_texts_truncated_total", "Texts cut to the model's max tokens.")
        self.rejected = Counter("vecembed_requests_rejected_total", "Requests refused by reason.")
        self.queue_depth = Gauge("vecembed_queue_depth", "Texts waiting in the batching queue.", queue_depth)
        self.in_flight = Gauge("vecembed_requests_in_flight", "Embedding requests being answered.", in_flight)
        self._all: list[Counter | Gauge | Histogram] = [
            self.requests, self.request_seconds, self.queue_seconds, self.batch_texts, self.batch_requests,
            self.batch_seconds, self.texts, self.tokens, self.truncated, self.rejected, self.queue_depth,
            self.in_flight,
        ]

    def render(self) -> str:
        """All metrics in the Prometheus text format."""
        lines: list[str] = []
        for metric in self._all:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
