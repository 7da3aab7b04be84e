"""Request counts, latencies and batch sizes in the Prometheus text format (``GET /metrics``)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

__all__ = ["BUCKETS", "Metrics"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds


class Metrics:
    """Counters and latency histograms per (method, route, status); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sum: Counter[str] = Counter()
        self._count: Counter[str] = Counter()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            buckets = self._buckets[route]
            for n, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[n] += 1
            self._sum[route] += seconds
            self._count[route] += 1

    def render(self, batch_sizes: Counter[int] | None = None, pending: int = 0) -> str:
        """The Prometheus exposition text."""
        lines = [
            "# HELP p5rec_requests_total HTTP requests by method, route and status.",
            "# TYPE p5rec_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(
                    f'p5rec_requests_total{{method="{method}",route="{route}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP p5rec_request_seconds HTTP request latency by route.",
                "# TYPE p5rec_request_seconds histogram",
            ]
            for route in sorted(self._count):
                for bound, n in zip(BUCKETS, self._buckets[route]):
                    lines.append(
                        f'p5rec_request_seconds_bucket{{route="{route}",le="{bound}"}} {n}'
                    )
                lines.append(
                    f'p5rec_request_seconds_bucket{{route="{route}",le="+Inf"}} '
                    f"{self._count[route]}"
                )
                lines.append(f'p5rec_request_seconds_sum{{route="{route}"}} {self._sum[route]:.6f}')
                lines.append(f'p5rec_request_seconds_count{{route="{route}"}} {self._count[route]}')
        sizes = dict(batch_sizes or {})
        lines += [
            "# HELP p5rec_model_batches_total Model calls by batch size.",
            "# TYPE p5rec_model_batches_total counter",
        ]
        for size, n in sorted(sizes.items()):
            lines.append(f'p5rec_model_batches_total{{size="{size}"}} {n}')
        lines += [
            "# HELP p5rec_queue_pending Requests waiting for the model.",
            "# TYPE p5rec_queue_pending gauge",
            f"p5rec_queue_pending {pending}",
        ]
        return "\n".join(lines) + "\n"
