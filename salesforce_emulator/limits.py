"""The org's daily API allowance, as ``Sforce-Limit-Info`` and ``GET /limits`` report it, and the cap
on concurrent long-running requests.

Contract: every counted REST call increments ``used`` by one *before* it is served; once ``used`` has
reached ``total`` further calls are refused (the caller answers 403 ``REQUEST_LIMIT_EXCEEDED``) and are
not counted. Thread-safe.

Salesforce allows at most 25 concurrent *long-running* API requests per org (in flight for 20 s or
more); while that many are running, further requests are refused with 403 ``REQUEST_LIMIT_EXCEEDED``
"ConcurrentPerOrgLongTxn Limit exceeded." (:class:`LongRunningGate`; cap and threshold configurable).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

DEFAULT_DAILY_LIMIT = 100_000
MAX_LONG_RUNNING = 25
LONG_RUNNING_SECONDS = 20.0
CONCURRENT_LIMIT_MESSAGE = "ConcurrentPerOrgLongTxn Limit exceeded."
BULK_QUERY_JOBS_PER_DAY = 10_000


class ApiUsage:
    """A thread-safe daily API request counter."""

    def __init__(self, total: int = DEFAULT_DAILY_LIMIT) -> None:
        self.total = total
        self.used = 0
        self.bulk_query_jobs = 0
        self._lock = threading.Lock()

    def try_consume(self) -> bool:
        """Count one call; ``False`` (and nothing counted) when the allowance is used up."""
        with self._lock:
            if self.used >= self.total:
                return False
            self.used += 1
            return True

    def count_bulk_query_job(self) -> None:
        with self._lock:
            self.bulk_query_jobs += 1

    def reset(self, total: int | None = None) -> None:
        """Start a new day (optionally with a new allowance)."""
        with self._lock:
            self.used = 0
            self.bulk_query_jobs = 0
            if total is not None:
                self.total = total

    def header(self) -> str:
        """The value of the ``Sforce-Limit-Info`` header."""
        return f"api-usage={self.used}/{self.total}"

    def limits_body(self) -> dict[str, Any]:
        """The JSON body of ``GET /limits`` (the entries backup tools read)."""

        def entry(maximum: int, used: int) -> dict[str, int]:
            return {"Max": maximum, "Remaining": max(0, maximum - used)}

        return {
            "ConcurrentAsyncGetReportInstances": entry(200, 0),
            "DailyApiRequests": entry(self.total, self.used),
            "DailyAsyncApexExecutions": entry(250_000, 0),
            "DailyBulkApiBatches": entry(15_000, 0),
            "DailyBulkV2QueryFileStorageMB": entry(976_562, 0),
            "DailyBulkV2QueryJobs": entry(BULK_QUERY_JOBS_PER_DAY, self.bulk_query_jobs),
            "DataStorageMB": entry(1024, 0),
            "FileStorageMB": entry(1024, 0),
            "HourlyTimeBasedWorkflow": entry(1000, 0),
            "SingleEmail": entry(5000, 0),
        }


class LongRunningGate:
    """Admission control for in-flight API requests.

    :meth:`enter` admits a request unless ``cap`` admitted requests have each been in flight for at least
    ``threshold_seconds`` (by ``clock``), in which case it returns None and the caller answers 403
    ``REQUEST_LIMIT_EXCEEDED`` (:data:`CONCURRENT_LIMIT_MESSAGE`). An admitted request must be released
    with :meth:`leave` once its reply is fully sent. ``cap=None`` admits everything. Thread-safe."""

    def __init__(
        self,
        cap: int | None = MAX_LONG_RUNNING,
        threshold_seconds: float = LONG_RUNNING_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cap = cap
        self.threshold_seconds = threshold_seconds
        self._clock = clock
        self._started: dict[int, float] = {}
        self._next = 0
        self._lock = threading.Lock()

    def enter(self) -> int | None:
        """A ticket for an admitted request, or None when the long-running cap is reached."""
        with self._lock:
            now = self._clock()
            if self.cap is not None and self._long_running(now) >= self.cap:
                return None
            self._next += 1
            self._started[self._next] = now
            return self._next

    def leave(self, ticket: int) -> None:
        with self._lock:
            self._started.pop(ticket, None)

    def _long_running(self, now: float) -> int:
        return sum(1 for t in self._started.values() if now - t >= self.threshold_seconds)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._started)

    def long_running(self) -> int:
        with self._lock:
            return self._long_running(self._clock())
