"""``GET /metrics``: the service's counters in the Prometheus text exposition format (version 0.0.4).

Written by hand (no client library): counters and histograms live in this process, and the log's
gauges are read when the page is scraped.  With several uvicorn workers each worker counts its own
requests, and a scrape reaches one of them (the log gauges are the same in all).

* ``tracemark_http_requests_total{route,method,status}``: answers, by route template (``/v1/log/entries/{index}``;
  ``unmatched`` for paths no route serves) and status.
* ``tracemark_http_request_duration_seconds{route}``: a histogram of the time to answer.
* ``tracemark_log_appends_total``: append requests this process answered with 200 (``POST /v1/log/entries``,
  ``/v1/text/generate`` and ``/v1/media/mark``; a retried duplicate, answered with its stored entry, included).
* ``tracemark_rate_limited_total{limit}``: requests refused with 429, by bucket (``client``, ``token``, ``heavy``).
* ``tracemark_busy_total``: heavy requests refused with 503 because every slot was taken;
  ``tracemark_heavy_requests_in_flight``: heavy requests running now.
* ``tracemark_log_tree_size``, ``tracemark_log_checkpoint_size``: the log's size and its latest published
  checkpoint's; ``tracemark_log_checkpoint_age_seconds``: seconds since this process first saw that
  checkpoint (checkpoints carry no time of their own); ``tracemark_log_up``: 1 when the log answered.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Upper bounds (seconds) of the latency histogram's buckets.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Routes whose successful answer appended one entry to the log.
APPEND_ROUTES = frozenset({"/v1/log/entries", "/v1/text/generate", "/v1/media/mark"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
#: The exposition format's content type.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Metrics:
    """The counters of one application (updated from the event loop and, for tokens, the thread pool)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.appends = 0
        self.limited: dict[str, int] = {"client": 0, "token": 0, "heavy": 0}
        self.busy_refusals = 0
        self.heavy_running = 0
        self._checkpoint: tuple[int, str] | None = None
        self._checkpoint_seen = time.time()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answer."""
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = _Histogram()
        histogram.observe(seconds)
        if status == 200 and method == "POST" and route in APPEND_ROUTES:
            self.appends += 1

    def rate_limited(self, limit: str) -> None:
        """Count a 429 from bucket ``limit``."""
        self.limited[limit] = self.limited.get(limit, 0) + 1

    def busy(self) -> None:
        """Count a heavy request refused for want of a slot."""
        self.busy_refusals += 1

    def heavy_in_flight(self, running: int) -> None:
        """Record how many heavy requests run now."""
        self.heavy_running = running

    def _log_lines(self, log_state: Callable[[], tuple[int, int, str]], now: float) -> list[str]:
        try:
            size, checkpoint_size, note = log_state()
        except Exception:  # a log that cannot be read is reported as down, never as a failed scrape
            return ["# TYPE tracemark_log_up gauge", "tracemark_log_up 0"]
        if self._checkpoint != (checkpoint_size, note):
            self._checkpoint, self._checkpoint_seen = (checkpoint_size, note), now
        return [
            "# TYPE tracemark_log_up gauge",
            "tracemark_log_up 1",
            "# HELP tracemark_log_tree_size Entries in the log.",
            "# TYPE tracemark_log_tree_size gauge",
            f"tracemark_log_tree_size {size}",
            "# HELP tracemark_log_checkpoint_size Tree size of the latest published checkpoint.",
            "# TYPE tracemark_log_checkpoint_size gauge",
            f"tracemark_log_checkpoint_size {checkpoint_size}",
            "# HELP tracemark_log_checkpoint_age_seconds Seconds since this process first saw the latest checkpoint.",
            "# TYPE tracemark_log_checkpoint_age_seconds gauge",
            f"tracemark_log_checkpoint_age_seconds {_number(round(now - self._checkpoint_seen, 3))}",
        ]

    def render(self, log_state: Callable[[], tuple[int, int, str]]) -> str:
        """The exposition text; ``log_state`` gives (tree size, checkpoint size, checkpoint note).

        The scrape runs in the thread pool while the event loop counts: it reads copies (``dict()`` and
        ``list()`` of these str/int containers copy in one step under the GIL).
        """
        requests, latency = dict(self.requests), dict(self.latency)
        lines = ["# HELP tracemark_http_requests_total HTTP answers by route template, method and status.",
                 "# TYPE tracemark_http_requests_total counter"]  # fmt: skip
        for (route, method, status), count in sorted(requests.items()):
            lines.append(f'tracemark_http_requests_total{{route="{_label(route)}",method="{method}",'
                         f'status="{status}"}} {count}')  # fmt: skip
        lines += ["# HELP tracemark_http_request_duration_seconds Time to answer, by route template.",
                  "# TYPE tracemark_http_request_duration_seconds histogram"]  # fmt: skip
        for route, histogram in sorted(latency.items()):
            name = f'tracemark_http_request_duration_seconds_bucket{{route="{_label(route)}",le='
            running = 0
            counts, total = list(histogram.counts), histogram.sum
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                running += count
                lines.append(f'{name}"{bound}"}} {running}')
            lines.append(f'tracemark_http_request_duration_seconds_sum{{route="{_label(route)}"}} '
                         f"{_number(total)}")  # fmt: skip
            lines.append(f'tracemark_http_request_duration_seconds_count{{route="{_label(route)}"}} {running}')
        lines += ["# HELP tracemark_log_appends_total Entries appended through this process.",
                  "# TYPE tracemark_log_appends_total counter", f"tracemark_log_appends_total {self.appends}",
                  "# HELP tracemark_rate_limited_total Requests refused with 429, by bucket.",
                  "# TYPE tracemark_rate_limited_total counter"]  # fmt: skip
        lines += [
            f'tracemark_rate_limited_total{{limit="{limit}"}} {count}' for limit, count in sorted(self.limited.items())
        ]
        lines += ["# HELP tracemark_busy_total Heavy requests refused with 503: every slot was taken.",
                  "# TYPE tracemark_busy_total counter", f"tracemark_busy_total {self.busy_refusals}",
                  "# HELP tracemark_heavy_requests_in_flight Heavy requests (images, generation) running now.",
                  "# TYPE tracemark_heavy_requests_in_flight gauge",
                  f"tracemark_heavy_requests_in_flight {self.heavy_running}"]  # fmt: skip
        lines += self._log_lines(log_state, time.time())
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
    """Count every HTTP answer (refusals by the other middleware included) with its route and latency."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, known_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths  # paths that name a route (a refusal before routing keeps its path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            route = scope.get("route")
            path = scope["path"]
            name = getattr(route, "path", None) or (path if path in self.known_paths else "unmatched")
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.observe(name, method, status, time.perf_counter() - started)
