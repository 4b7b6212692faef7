"""Starting long work from the API: the ports, and their local (background thread) implementations.

- :class:`BackupLauncher` starts an on-demand backup. Locally (:class:`LocalBackupLauncher`) the run is
  planned synchronously (so its ``run_id`` is known and ``RunInProgress``/``UnknownOrg`` surface as
  HTTP errors) and extracted + finalized in a background thread. In the cloud an adapter starts the
  backup state machine (``orgvault.adapters.aws_stepfunctions.StepFunctionsBackupLauncher``).
- :class:`TaskRunner` runs an approved restore in this process: locally a background thread
  (:class:`ThreadRunner`), or :class:`InlineRunner` (inside the request). In AWS an approved restore is
  handed to a :class:`RestoreLauncher` instead, which starts the restore state machine
  (``orgvault.adapters.aws_stepfunctions.StepFunctionsRestoreLauncher``).
Errors inside a background task are logged (type and message only) and left in the run / journal
status by the services themselves.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupStarted:
    org: str
    run_id: str | None
    execution_id: str | None
    status: str


class BackupLauncher(Protocol):
    def start_backup(self, org: str, *, full: bool) -> BackupStarted: ...


class TaskRunner(Protocol):
    def submit(self, name: str, fn: Callable[[], Any]) -> None: ...


class RestoreLauncher(Protocol):
    """Starts an approved restore job elsewhere (AWS: the restore state machine with
    ``{"org", "job_id"}``). Returns an execution id."""

    def start_restore(self, org: str, job_id: str) -> str: ...


class ThreadRunner:
    """Runs each task in its own daemon thread; :meth:`wait` joins them (tests, shutdown)."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, name: str, fn: Callable[[], Any]) -> None:
        def guarded() -> None:
            try:
                fn()
            except Exception as exc:  # the service already recorded the failure in the run/journal
                log.warning("background task %s ended with %s: %s", name, type(exc).__name__, exc)

        t = threading.Thread(target=guarded, name=f"orgvault-{name}", daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Join every task; ``True`` when all finished."""
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
        return not any(t.is_alive() for t in threads)


class InlineRunner:
    """Runs the task in the caller's thread (Lambda: there is no background after the response)."""

    def submit(self, name: str, fn: Callable[[], Any]) -> None:
        fn()


class LocalBackupLauncher:
    """Plans the run now (under the API's own lock owner) and extracts it in ``runner``."""

    def __init__(self, app: Any, runner: TaskRunner) -> None:
        self.app = app
        self.runner = runner

    def start_backup(self, org: str, *, full: bool) -> BackupStarted:
        svc = self.app.backup_service(owner=f"api-{secrets.token_hex(4)}")
        plan = svc.start_run(org, full=full)
        # run_backup resumes the run just planned (same owner, lock refreshed) and finalizes it.
        self.runner.submit(f"backup-{org}-{plan.run_id}", lambda: svc.run_backup(org))
        return BackupStarted(org=org, run_id=plan.run_id, execution_id=None, status="running")
