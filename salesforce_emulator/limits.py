"""The org's daily API allowance, as ``Sforce-Limit-Info`` and ``GET /limits`` report it.

Contract: every counted REST call increments ``used`` by one *before* it is served; once ``used`` has
reached ``total`` further calls are refused (the caller answers 403 ``REQUEST_LIMIT_EXCEEDED``) and are
not counted. Thread-safe.
"""

from __future__ import annotations

import threading
from typing import Any

DEFAULT_DAILY_LIMIT = 100_000
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
