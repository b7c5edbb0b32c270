"""Every request an identity test sends, with its time and answer, and a cap on failed requests.

A real endpoint can refuse, time out or hang; a test that keeps asking burns time and budget and
ends with nothing to show.  :class:`RequestLog` wraps each call: it records when the request
started, how long it took, what was asked and what came back (or the error), hands each record to
an optional sink as it happens (the CLI appends it to a JSON-lines transcript, so a run that is
killed keeps what it asked), and stops sending once ``max_failures`` requests have failed in all,
or ``max_consecutive`` in a row (a dead or hanging endpoint; a flaky one that answers every other
request is left to the retries).  Requests not sent after the cap count as failed, and the verdict
says the run was stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from tracemark._json import JSONObject, JSONValue
from tracemark.errors import SuspectQueryError

T = TypeVar("T")
Sink = Callable[[JSONObject], None]


@dataclass
class RequestLog:
    """Records of the requests sent to one model, the failures counted, sending stopped at ``max_failures``."""

    model: str
    max_failures: int | None = None
    sink: Sink | None = None
    max_consecutive: int | None = None
    records: list[JSONObject] = field(default_factory=list)
    failures: int = 0
    consecutive: int = 0
    not_sent: int = 0

    @property
    def stopped(self) -> bool:
        """Whether a failure cap was reached (no further request is sent)."""
        total = self.max_failures is not None and self.failures >= self.max_failures
        return total or (self.max_consecutive is not None and self.consecutive >= self.max_consecutive)

    def call(
        self,
        request: JSONObject,
        send: Callable[[], T],
        describe: Callable[[T], JSONValue],
    ) -> T | None:
        """``send()``'s answer, or None when it failed (SuspectQueryError) or the cap stopped it."""
        if self.stopped:
            self.not_sent += 1
            return None
        started = datetime.now(UTC).isoformat(timespec="milliseconds")
        clock = time.perf_counter()
        record: JSONObject = {"model": self.model, "index": len(self.records), "started_utc": started, **request}
        try:
            answer = send()
        except SuspectQueryError as exc:
            self.failures += 1
            self.consecutive += 1
            record |= {"seconds": round(time.perf_counter() - clock, 6), "ok": False, "error": str(exc)}
            self._keep(record)
            return None
        self.consecutive = 0
        record |= {"seconds": round(time.perf_counter() - clock, 6), "ok": True, "response": describe(answer)}
        self._keep(record)
        return answer

    def _keep(self, record: JSONObject) -> None:
        self.records.append(record)
        if self.sink is not None:
            self.sink(record)

    def blocker(self) -> str | None:
        """The reason a stopped run is inconclusive, or None."""
        if not self.stopped:
            return None
        cap = "in a row" if self.max_consecutive is not None and self.consecutive >= self.max_consecutive else "in all"
        return (
            f"stopped after {self.failures} failed requests to {self.model} ({self.consecutive} {cap} reached the "
            f"cap): {self.not_sent} requests were not sent"
        )
