"""ProcessExtractPool: the backup service's ``ExtractPool`` on local worker processes.

Local mode's counterpart of the cloud's distributed Map: up to ``workers`` objects are extracted at
once, each by a worker process that builds its own service (its own catalog connection, key
provider and Salesforce login) with ``make_service``, a picklable callable supplied by the
composition root (``orgvault.bootstrap``). This module knows nothing of how that service is wired.

Contracts:

- **spawn, never fork.** The calling process may run threads (the demo and the tests serve the
  Salesforce emulator from one); forking a threaded process can copy held locks into the child.
- **Dynamic queue.** Tasks start in the given order, the next one on whichever worker is free.
- **Workers die with the parent.** On Linux each worker asks the kernel for SIGKILL when its parent
  goes (``prctl(PR_SET_PDEATHSIG)``); everywhere a worker also exits when it sees it has been
  re-parented (checked at start, after every committed chunk and step, and while waiting for a
  Bulk job). So a kill -9
  of the CLI leaves no worker that could write after a resumed run starts.
- **Stop on the first failure by terminating.** A worker's error (or a worker that died) means no
  task is started after it; the other running workers are terminated (SIGTERM, then SIGKILL) and
  joined before the error is raised. Terminating is safe: every committed page is in a checkpoint
  and a half-written chunk is an orphan no manifest references, the same guarantee as a kill -9.
  Waiting for them to reach their next commit instead could take a whole Bulk page or poll wait,
  and would keep no more than that page.
- **Errors keep their class.** An ``OrgVaultError`` is raised again in the parent as the same class
  of ``orgvault.errors`` (the nearest one for classes defined elsewhere) with its message (and
  ``error_code`` / ``status``); anything else becomes ``WorkerFailed`` naming the object and the
  error's type. Exceptions are not pickled across (their constructors may not allow it).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any

from orgvault import errors
from orgvault.errors import OrgVaultError, WorkerFailed

log = logging.getLogger(__name__)

# ``make_service()`` -> (service with ``run_task(task, *, on_step, sleep, after_commit)``, close)
ServiceFactory = Callable[[], tuple[Any, Callable[[], None]]]

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0  # how often the parent wakes up (idle callback, dead-worker check) at the least
JOIN_SECONDS = 10.0  # a stopped worker gets this long to exit before it is killed


@dataclass
class _Slot:
    index: int
    process: Any
    conn: Connection
    task: Any = None  # the task it is working on; None: idle


class ProcessExtractPool:
    """Extract objects in up to ``workers`` spawned processes (see the module docstring)."""

    def __init__(self, workers: int, make_service: ServiceFactory, *, start_method: str = "spawn") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.make_service = make_service
        self._ctx: Any = get_context(start_method)
        self._slots: list[_Slot] = []

    def __repr__(self) -> str:
        return f"ProcessExtractPool(workers={self.workers})"

    def warm_up(self) -> None:
        """Start the workers now (interpreter start-up, imports, opening the catalog) so that this
        overlaps the caller's planning; idempotent. :meth:`run` uses them; :meth:`close` stops them
        if ``run`` is never called."""
        while len(self._slots) < self.workers:
            self._slots.append(self._spawn(len(self._slots)))

    def close(self) -> None:
        """Stop every worker still running (idle ones exit; any busy one is terminated). Idempotent."""
        slots, self._slots = self._slots, []
        self._stop(slots, terminate=True)

    def run(
        self,
        tasks: Sequence[Any],
        *,
        on_start: Callable[[str], None],
        on_step: Callable[[Any], None],
        idle: Callable[[], None],
    ) -> None:
        """See ``orgvault.services.backup.ExtractPool.run``. Every worker is stopped when it returns."""
        pending = deque(tasks)
        slots = self._slots
        failure: BaseException | None = None
        clean = False
        try:
            while len(slots) < min(self.workers, len(pending)):
                slots.append(self._spawn(len(slots)))
            for slot in slots:
                self._assign(slot, pending, on_start)
            while failure is None and any(s.task is not None for s in slots):
                busy = [s for s in slots if s.task is not None]
                wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=POLL_SECONDS)
                for slot in busy:
                    failure = self._drain(slot, on_step)
                    if failure is not None:
                        break
                    if slot.task is None:
                        self._assign(slot, pending, on_start)
                idle()
            clean = failure is None
        finally:
            self._slots = []
            self._stop(slots, terminate=not clean)
        if failure is not None:
            raise failure

    # --- parent side ----------------------------------------------------------------------------

    def _spawn(self, index: int) -> _Slot:
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(self.make_service, os.getpid(), child_conn),
            name=f"orgvault-extract-{index}",
            daemon=True,  # also ended by multiprocessing when the parent exits normally
        )
        process.start()
        child_conn.close()
        return _Slot(index, process, parent_conn)

    @staticmethod
    def _assign(slot: _Slot, pending: deque[Any], on_start: Callable[[str], None]) -> None:
        if not pending:
            return
        slot.task = pending.popleft()
        with contextlib.suppress(OSError):  # a worker that is gone is noticed by _drain
            slot.conn.send(slot.task)
        on_start(slot.task.object_name)

    @staticmethod
    def _drain(slot: _Slot, on_step: Callable[[Any], None]) -> BaseException | None:
        """Handle what ``slot``'s worker sent; the failure to raise, if any. A worker that exited
        while it had a task (after its messages are read) is a failure."""
        name = slot.task.object_name if slot.task is not None else "?"
        while slot.task is not None and slot.conn.poll():
            try:
                kind, payload = slot.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "step":
                on_step(payload)
            elif kind == "done":
                slot.task = None
            else:
                return _rebuild(payload, name)
        if slot.task is not None and not slot.process.is_alive():
            return WorkerFailed(
                f"the worker process extracting {name} exited (code {slot.process.exitcode}) before the "
                "object was done; what it committed is kept and the run resumes from there"
            )
        return None

    @staticmethod
    def _stop(slots: list[_Slot], *, terminate: bool) -> None:
        for slot in slots:
            if terminate and slot.task is not None:
                slot.process.terminate()
            else:
                with contextlib.suppress(OSError):
                    slot.conn.send(None)  # no more tasks: exit
        deadline = time.monotonic() + JOIN_SECONDS
        for slot in slots:
            slot.process.join(max(deadline - time.monotonic(), 0.1))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()


def _rebuild(info: dict[str, Any], object_name: str) -> BaseException:
    """The parent's exception for a worker's error report (see the module docstring)."""
    for class_name in info.get("bases", []):
        cls = getattr(errors, class_name, None)
        if isinstance(cls, type) and issubclass(cls, OrgVaultError):
            exc = cls(info["message"])
            for attr in ("error_code", "status"):
                if attr in info:
                    setattr(exc, attr, info[attr])
            return exc
    failed = WorkerFailed(
        f"extracting {object_name} failed in a worker process: {info['type']}: {info['message']}"
    )
    failed.worker_traceback = info.get("traceback", "")  # type: ignore[attr-defined]
    log.debug("worker traceback for %s:\n%s", object_name, failed.worker_traceback)  # type: ignore[attr-defined]
    return failed


# --- worker side --------------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when its parent dies. Everywhere: exit now if it already did."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(
                ctypes.c_int(PR_SET_PDEATHSIG),
                ctypes.c_ulong(int(signal.SIGKILL)),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
                ctypes.c_ulong(0),
            )
        except (OSError, AttributeError):  # no prctl: the getppid checks remain
            pass
    _exit_if_orphaned(parent_pid)


def _exit_if_orphaned(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        os._exit(1)  # nobody is waiting for this work; what is committed stays


def _error_info(exc: BaseException) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "bases": [c.__name__ for c in type(exc).__mro__ if c.__module__ == errors.__name__],
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
    for attr in ("error_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, str | int):
            info[attr] = value
    return info


def _worker_main(make_service: ServiceFactory, parent_pid: int, conn: Connection) -> None:
    """A worker: build the service, then run tasks received on ``conn`` until ``None`` (or the pipe
    closes). Sends ``("step", StepResult)`` per step, ``("done", name)`` per task, ``("error", info)``
    once and exits on the first error."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us

    def on_step(result: Any) -> None:
        conn.send(("step", dataclasses.replace(result, checkpoint=None)))
        _exit_if_orphaned(parent_pid)  # between steps: everything so far is committed

    def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.5))
            _exit_if_orphaned(parent_pid)

    close: Callable[[], None] | None = None
    try:
        try:
            service, close = make_service()
        except BaseException as exc:
            conn.send(("error", _error_info(exc)))
            return
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            if task is None:
                return
            try:
                service.run_task(
                    task, on_step=on_step, sleep=sleep, after_commit=lambda: _exit_if_orphaned(parent_pid)
                )
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    conn.send(("error", _error_info(exc)))
                return
            conn.send(("done", task.object_name))
    finally:
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        conn.close()
