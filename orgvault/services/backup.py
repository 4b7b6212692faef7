"""Backup orchestration: ``start_run`` → ``extract_step`` (per object, repeated) → ``finalize_run``.

The three calls map 1:1 onto the Step Functions workflow (start Lambda, a Map of extract-step
Lambdas with Wait states, finalize Lambda); locally :meth:`BackupService.run_backup` loops them
in-process.

Contracts:

- **One run per org.** ``start_run`` takes the org lock (owner ``host:pid``); a lock held by a
  dead local process is taken over; otherwise ``RunInProgress`` names the holder.
- **Resume.** The newest unfinished run (PAUSED, FAILED, or RUNNING whose owner died) is resumed
  from its checkpoints rather than starting a new one.
- **Crash safety.** Every chunk is sealed and written (write-once, random key suffix) *before*
  ``Catalog.record_chunk`` adds it and moves the object's checkpoint past it in one transaction.
  Chunks close only on page boundaries, so the checkpoint cursor always points at the first page
  not yet committed: after a kill -9 anywhere a re-run repeats at most the uncommitted pages and
  duplicates nothing (an orphaned sealed object may remain; no manifest references it).
- **Invisible until complete.** The manifest is written last in ``finalize_run`` and the snapshot
  committed with compare-and-set on the org's head.
- **Incremental.** Per object: ``SystemModstamp >= watermark − overlap`` with queryAll; rows with
  ``IsDeleted`` become tombstones; a changed ``fields_hash`` or a new object means a full re-read
  (a new base layer). Deltas are read through REST (small; no Bulk job to create, poll and wait
  for); full reads and the reconciliation's Id read through Bulk where the object allows it.
- **Reconciliation (hard deletes, purges).** Reading all Ids of an object: every
  ``reconcile_every`` runs, when the parent snapshot is older than the recycle-bin window
  (deletions since may have left the bin unseen), and when the count check below fails. The
  extract step only reads the Ids and seals them as IDS chunks (an ``ids`` phase; encrypt only);
  ``finalize_run`` compares them with the parent snapshot + this run's deltas and writes the gone
  ones as a tombstone chunk. The extract step never decrypts (its cloud role may only generate
  data keys, and unwrap the org's content-id key for file de-duplication).
- **Count check (purges seen late).** After a delta read of an object that has ``CreatedDate`` and
  is not being reconciled anyway, the count the snapshot will hold is derived without decrypting:
  parent count + live delta rows created after the parent's watermark − tombstone rows of records
  created before it and deleted after it. One ``SELECT COUNT()`` per such object per run (queryAll
  ``WHERE IsDeleted = false`` where the object has ``IsDeleted``, so archived activities count)
  checks it: equal → that is the object's count (finalize need not count by decrypting); different
  (a purge, an undelete, or a change racing the read) → the object is reconciled in this run. The
  rule errs towards reconciling; a purge masked by an equal and opposite miscount waits for the
  scheduled reconciliation.
- **Change probe (unchanged objects cost no read).** For a count-checked delta whose parent kept an
  edge (the Ids and SystemModstamps it read within the overlap of its watermark), ``start_run`` adds
  the first page of the object's delta read — the very query its extract would send — to the
  Composite calls that carry the COUNT()s (Salesforce allows 5 queries a call). A complete page
  (``done``) whose every row is in the parent edge with the same stamp, and a COUNT() equal to the
  parent's count: nothing changed, and the object's checkpoint is created DONE (no chunk; the
  parent's watermark, edge and count), exactly the state a delta read that found only the parent's
  rows ends in; it is not in ``RunPlan.objects``. Anything else — no answer, more than a page, a row
  outside the edge (an update, a delete, a late commit inside the window), a different count (a
  purge) — and the object is read as usual.
- **First pages (local runs).** ``run_backup`` plans with ``first_pages``: every delta's first page
  is read that way, and one that is not "unchanged" is kept in memory and handed to the object's
  first extract step, which uses it instead of reading only when its read starts with the very
  cursor the page was read with (else it reads as usual), and goes on from the page's continuation
  (a delta longer than a page). A small delta then costs a fifth of a Composite call instead of a
  call. Step Functions plans without it (the extract runs elsewhere)
  and reads changed objects as before.
- **Parent-filtered objects.** ``ContentDocumentLink`` cannot be queried without an Id filter: it is
  read in ``ContentDocumentId IN (...)`` batches of ``FILTER_BATCH`` over all ContentDocument Ids, in
  full every run.
- **API budget.** ``ApiBudgetExhausted`` anywhere keeps the checkpoints; the run is PAUSED and the
  lock released; the next ``start_run`` resumes it.
- **Several objects at once (local).** Given an :class:`ExtractPool`, ``run_backup`` hands the
  objects, largest first, to the pool's workers (each its own process with its own catalog
  connection, key provider and Salesforce login); ``start_run``, the lock and ``finalize_run`` stay
  in the calling process. The per-object checkpoints make this the same engine as the cloud's Map:
  a failure in one object stops the others (their committed pages are kept) and the run resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from orgvault.domain.chunks import ChunkBuilder, EncodedChunk
from orgvault.domain.models import (
    Checkpoint,
    ChunkKind,
    ChunkRecord,
    ObjectState,
    OrgConnection,
    Run,
    RunKind,
    RunStatus,
    SnapshotRecord,
)
from orgvault.domain.plan import PlanSettings, SkipReason, Strategy
from orgvault.errors import (
    ApiBudgetExhausted,
    BulkNotSupported,
    OrgVaultError,
    PermanentError,
    QueryLocatorExpired,
    RunInProgress,
    SalesforceRequestError,
)
from orgvault.ports import Catalog, ObjectSchema, RecordPage, SalesforceSource
from orgvault.services import backup_glue as glue
from orgvault.settings import BackupSettings

RECYCLE_BIN_DAYS = 15
MAX_READ_RESTARTS = 3
# Objects Salesforce refuses to query without an Id filter on a parent ("Implementation restriction"):
# read them as batches of ``fk IN (parent ids)`` over all parent ids, always in full (small objects).
FILTERED_READS: dict[str, tuple[str, str]] = {"contentdocumentlink": ("ContentDocumentId", "ContentDocument")}
FILTER_BATCH = 200
# Objects whose delta's first page is read at plan time (the rest are read as usual): with pages of at
# most 200 records (adapters/salesforce_backup.py FIRST_PAGE_RECORDS), planning holds ≤ 10,000 records.
FIRST_PAGES_MAX = 50
SourceFactory = Callable[[OrgConnection], SalesforceSource]


class StepStatus(StrEnum):
    DONE = "done"
    MORE = "more"
    WAIT = "wait"


class Phase(StrEnum):
    RECORDS = "records"  # the full or delta read
    IDS = "ids"  # reading every live Id (reconciliation)
    DONE = "done"


@dataclass(frozen=True)
class SkippedObject:
    name: str
    reason: str


@dataclass(frozen=True)
class RunPlan:
    """What ``start_run`` decided. ``objects`` are the objects still to extract (not DONE)."""

    org: str
    run_id: str
    kind: RunKind
    resumed: bool
    parent_snapshot_id: str | None
    objects: tuple[str, ...]
    skipped: tuple[SkippedObject, ...] = ()
    modes: dict[str, str] = field(default_factory=dict)  # object -> "full" | "delta"
    # Delta objects the change probe found unchanged: finished at plan time (DONE, not in ``objects``).
    unchanged: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A plain dict for a Step Functions state (the Map iterates over ``objects``)."""
        return {
            "org": self.org,
            "run_id": self.run_id,
            "kind": self.kind.value,
            "resumed": self.resumed,
            "parent_snapshot_id": self.parent_snapshot_id,
            "objects": list(self.objects),
            "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped],
            "modes": dict(self.modes),
            "unchanged": list(self.unchanged),
        }


@dataclass(frozen=True)
class StepResult:
    """One extract step. ``status`` DONE: the object is finished; MORE: call again now; WAIT: call
    again after ``wait_seconds`` (a Bulk job is still running)."""

    org: str
    run_id: str
    object_name: str
    status: StepStatus
    wait_seconds: float = 0.0
    records: int = 0  # records committed by this step
    tombstones: int = 0
    files: int = 0  # file bodies downloaded by this step
    plain_bytes: int = 0
    stored_bytes: int = 0
    api_calls: int = 0
    checkpoint: Checkpoint | None = field(default=None, repr=False)  # as committed at the end of the step

    def to_json(self) -> dict[str, Any]:
        """A plain dict for a Step Functions state: ``status`` drives the Choice, ``wait_seconds``
        the Wait state's SecondsPath."""
        return {
            "org": self.org,
            "run_id": self.run_id,
            "object": self.object_name,
            "status": self.status.value,
            "wait_seconds": int(round(self.wait_seconds)),
            "records": self.records,
            "tombstones": self.tombstones,
            "files": self.files,
            "plain_bytes": self.plain_bytes,
            "stored_bytes": self.stored_bytes,
            "api_calls": self.api_calls,
        }


@dataclass(frozen=True)
class BackupResult:
    snapshot: SnapshotRecord
    run: Run
    objects: int
    records: int
    files: int
    plain_bytes: int
    stored_bytes: int
    api_calls: int
    seconds: float
    skipped: tuple[SkippedObject, ...] = ()
    records_read: int = 0  # records (changed ones, for an incremental) written by this run
    tombstones: int = 0


@dataclass
class ObjectProgress:
    """Per-object counters handed to the progress callback."""

    object_name: str
    records: int = 0
    files: int = 0
    plain_bytes: int = 0
    stored_bytes: int = 0
    api_calls: int = 0
    seconds: float = 0.0
    done: bool = False


ProgressFn = Callable[[ObjectProgress], None]

# Rough cost of one record of an object with file fields, in records of a plain object: each record
# downloads a body (a request of its own). Only used to order objects largest first.
FILE_RECORD_WEIGHT = 40


@dataclass(frozen=True)
class ExtractTask:
    """One object to extract to DONE, as handed to a worker (picklable). ``schemas``: describes the
    planning process already holds (object and, for filtered reads, its parent), so that a worker
    need not describe again; missing ones are described by the worker."""

    org: str
    run_id: str
    object_name: str
    schemas: dict[str, ObjectSchema] = field(default_factory=dict)


class ExtractPool(Protocol):
    """Runs :meth:`BackupService.run_task` for several objects at once (local mode: worker processes).

    Contract of :meth:`run`: ``tasks`` are started in the given order, each as soon as a worker is free,
    at most ``workers`` at once. ``on_start(object)`` and ``on_step(StepResult)`` are called in the
    calling thread (results without their ``checkpoint``), ``idle()`` at least every few seconds while
    waiting. It returns when every task is DONE. On the first failure (a worker's exception or a
    worker that died) no further task is started, running workers are stopped, and only once no
    worker is left the error is raised: an ``OrgVaultError`` as its own class with its message, any
    other exception as ``WorkerFailed`` naming its type. An exception from a callback stops the
    workers the same way and propagates."""

    workers: int

    def warm_up(self) -> None:
        """Start the workers ahead of :meth:`run` (they get ready while the caller plans)."""

    def close(self) -> None:
        """Stop workers :meth:`warm_up` started when :meth:`run` did not (idempotent)."""

    def run(
        self,
        tasks: Sequence[ExtractTask],
        *,
        on_start: Callable[[str], None],
        on_step: Callable[[StepResult], None],
        idle: Callable[[], None],
    ) -> None: ...


def new_run_id(now: datetime) -> str:
    """Sortable and unique: UTC time to the microsecond plus 4 random hex digits."""
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + os.urandom(2).hex()


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def local_owner_alive(owner: str) -> bool | None:
    """True/False when ``owner`` is a ``host:pid`` on this host; None when we cannot tell."""
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sf_datetime(text: str) -> datetime:
    """Parse Salesforce datetime text (``2024-01-01T00:00:00.000+0000`` or ``...Z``)."""
    t = text.strip().replace("Z", "+0000")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(t, fmt)
        except ValueError:
            continue
    raise ValueError(f"not a Salesforce datetime: {text!r}")


def soql_datetime(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class FirstPage:
    """The first page of an object's delta read, read at plan time (batched with the other objects'
    in Composite calls). ``cursor`` is the REST read cursor it was read with: the extract uses
    ``records`` instead of reading only when its own read starts with an equal cursor, and goes on
    from ``next`` (the page's continuation; None: this page is the whole delta). Plain data,
    picklable (a worker process may receive it)."""

    cursor: dict[str, Any]
    records: list[dict[str, Any]]
    next: dict[str, Any] | None = None


class BackupService:
    """The backup use cases over the ports. ``source_factory`` builds an authenticated
    ``SalesforceSource`` for a connection (credentials come from the SecretStore inside it)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        vault: Any,
        source_factory: SourceFactory,
        settings: BackupSettings | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] | None = None,
        owner_alive: Callable[[str], bool | None] = local_owner_alive,
        chunk_hook: Callable[[str, str, int], None] | None = None,
        extract_pool: ExtractPool | None = None,
    ) -> None:
        self.catalog = catalog
        self.vault = vault
        self.source_factory = source_factory
        self.settings = settings or BackupSettings()
        self.owner = owner or default_owner()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.owner_alive = owner_alive
        # Called after each committed chunk (object, kind, seq): tests raise from it to simulate kill -9.
        self.chunk_hook = chunk_hook
        # Local mode with workers > 1: objects are extracted in worker processes (see run_backup).
        self.extract_pool = extract_pool
        self._sources: dict[str, SalesforceSource] = {}
        self._schemas: dict[tuple[str, str], ObjectSchema] = {}
        # (org, run id, object) → its delta's first page read at plan time (``start_run(first_pages=True)``)
        self._first_pages: dict[tuple[str, str, str], FirstPage] = {}

    # --- helpers -----------------------------------------------------------------------------
    def source(self, org: str) -> SalesforceSource:
        src = self._sources.get(org)
        if src is None:
            src = self.source_factory(self.catalog.get_org(org))
            self._sources[org] = src
        return src

    def api_calls(self, org: str) -> int:
        src = self._sources.get(org)
        return int(getattr(src, "calls", 0) or 0) if src is not None else 0

    def _acquire_lock(self, org: str) -> None:
        now = self.clock()
        lock = self.catalog.get_lock(org)
        force = False
        if lock is not None and lock.owner != self.owner and lock.expires_at > now:
            if self.owner_alive(lock.owner) is False:
                force = True  # its process is dead: take it over
            else:
                raise RunInProgress(
                    f"org {org!r} is already being backed up by {lock.owner} (since "
                    f"{lock.acquired_at:%Y-%m-%d %H:%M:%S} UTC); wait for it to finish, or if that process is "
                    f"gone the lock expires at {lock.expires_at:%Y-%m-%d %H:%M:%S} UTC"
                )
        self.catalog.acquire_lock(
            org, self.owner, now=now, ttl_seconds=self.settings.lock_ttl_seconds, force=force
        )

    def _resumable(self, org: str) -> Run | None:
        runs = self.catalog.list_runs(org)
        if not runs:
            return None
        last = runs[-1]
        if last.status in (RunStatus.PAUSED, RunStatus.FAILED, RunStatus.RUNNING) and not last.stats.get(
            "abandoned"
        ):
            return last
        return None

    # --- start -------------------------------------------------------------------------------
    def start_run(self, org: str, *, full: bool = False, first_pages: bool = False) -> RunPlan:
        """Lock the org, then resume its unfinished run or plan a new one (full when there is no
        head snapshot or ``full``). ``first_pages``: the caller will extract in this process and
        hand each object its :meth:`take_first_page`; a new incremental then reads the first page of
        every delta at plan time (batched) and keeps the complete ones in memory, so that those
        objects are not read again. Without it only the objects the change probe may find unchanged
        are probed (Step Functions: the extract runs elsewhere). Raises ``UnknownOrg``,
        ``RunInProgress``, ``ApiBudgetExhausted`` (lock released), Salesforce errors."""
        conn = self.catalog.get_org(org)
        self._acquire_lock(org)
        try:
            run = self._resumable(org)
            if run is not None and not full:
                return self._resume(run)
            if run is not None:  # --full abandons an unfinished run (its chunks become orphans)
                self.catalog.put_run(
                    replace(
                        run,
                        status=RunStatus.FAILED,
                        message="abandoned: a new full run was started",
                        finished_at=self.clock(),
                        stats={**run.stats, "abandoned": True},
                    )
                )
            return self._plan_new(conn, full=full, first_pages=first_pages)
        except BaseException:
            self.catalog.release_lock(org, self.owner)
            raise

    def _resume(self, run: Run) -> RunPlan:
        run = replace(
            run, status=RunStatus.RUNNING, message="resumed", stats={**run.stats, "lock_owner": self.owner}
        )
        self.catalog.put_run(run)
        cps = self.catalog.list_checkpoints(run.org, run.run_id)
        skipped = tuple(SkippedObject(**s) for s in run.stats.get("skipped", []))
        return RunPlan(
            org=run.org,
            run_id=run.run_id,
            kind=run.kind,
            resumed=True,
            parent_snapshot_id=run.parent_snapshot_id,
            objects=tuple(c.object_name for c in cps if c.state is not ObjectState.DONE),
            skipped=skipped,
            modes={c.object_name: c.cursor.get("mode", "full") for c in cps},
            unchanged=tuple(c.object_name for c in cps if c.cursor.get("probe") == "unchanged"),
        )

    def take_first_page(self, org: str, run_id: str, object_name: str) -> FirstPage | None:
        """The object's delta's first page as read at plan time (see ``start_run(first_pages=True)``), once:
        it is forgotten here when taken. None when there is none (not a delta, not complete in one
        page, found unchanged, or planned by another process)."""
        return self._first_pages.pop((org, run_id, object_name), None)

    def _plan_new(self, conn: OrgConnection, *, full: bool, first_pages: bool = False) -> RunPlan:
        org = conn.name
        src = self.source(org)
        # The hash chain always continues from the head; ``full`` only means every object is read
        # in full (a new base layer each), not that the run forgets its parent.
        parent = self.catalog.head_snapshot(org)
        parent_manifest = glue.read_manifest(self.vault, self.catalog, parent) if parent else None
        plan_settings = PlanSettings.from_mapping(conn.settings)
        plan_settings = PlanSettings(
            only=plan_settings.only or self.settings.only,
            include=plan_settings.include + self.settings.include,
            exclude=plan_settings.exclude + self.settings.exclude,
        )
        plans, skipped_raw = glue.plan_objects(
            src,
            plan_settings,
            describe=lambda n: self._describe(org, n),
            prefetch=lambda names: self._prefetch_describes(org, names),
        )
        skipped = [
            SkippedObject(s.name, f"{s.reason.value}: {s.detail}" if s.detail else s.reason.value)
            for s in skipped_raw
        ]
        failed = {s.name for s in skipped_raw if s.reason is SkipReason.DESCRIBE_FAILED}
        planned = {p.name for p in plans}
        removed = (
            sorted(n for n in parent_manifest.objects if n not in planned and n not in failed)
            if parent_manifest
            else []
        )
        now = self.clock()
        run_id = new_run_id(now)
        incremental = parent is not None and not full
        kind = RunKind.INCREMENTAL if incremental else RunKind.FULL
        reconcile = self._reconcile_due(org) if incremental else False
        # Deletions since the parent run are still in the recycle bin (seen as IsDeleted rows) unless
        # the parent is older than the bin keeps them; purges are caught by the count check.
        stale_parent = (
            incremental
            and parent is not None
            and (now - _aware(parent.created_at)) > timedelta(days=RECYCLE_BIN_DAYS - 1)
        )
        modes: dict[str, str] = {}
        checkpoints: list[Checkpoint] = []
        for p in plans:
            prev = glue.manifest_object(parent_manifest, p.name) if parent_manifest and incremental else None
            mode, since, do_reconcile, count_check = "full", None, False, False
            if (
                prev is not None
                and prev.get("fields_hash") == p.fields_hash
                and prev.get("watermark")
                and "SystemModstamp" in p.fields
                and p.name.lower() not in FILTERED_READS
            ):
                wm = sf_datetime(prev["watermark"])
                mode = "delta"
                since = soql_datetime(wm - timedelta(seconds=self.settings.overlap_seconds))
                do_reconcile = reconcile or stale_parent
                count_check = (
                    not do_reconcile and "CreatedDate" in p.fields and prev.get("records") is not None
                )
            modes[p.name] = mode
            cursor = {
                "mode": mode,
                "since": since,
                "fields": list(p.fields),
                "field_specs": [list(x) for x in p.specs] + [[f, "base64"] for f in p.file_fields],
                "file_fields": list(p.file_fields),
                "phase": Phase.RECORDS.value,
                "read": None,
                "reconcile": do_reconcile,
                "base_from_seq": 0,
                "prev_watermark": prev.get("watermark") if prev else None,
                "prev_records": prev.get("records") if prev else None,
                "count_check": count_check,  # COUNT() vs the derived count: reconcile on a mismatch
                "bulk_strategy": p.strategy,  # for the (large) id reconciliation read
            }
            checkpoints.append(
                Checkpoint(
                    org=org,
                    run_id=run_id,
                    object_name=p.name,
                    state=ObjectState.PENDING,
                    # a delta is small: REST answers at once (Bulk costs a job, a poll and a wait)
                    strategy=Strategy.REST.value if mode == "delta" else p.strategy,
                    cursor=cursor,
                    next_seq=0,
                    records=0,
                    watermark=prev.get("watermark") if prev else None,
                    fields_hash=p.fields_hash,
                    updated_at=now,
                )
            )
        if parent is not None:  # the parent run's edges (catalog only: nothing to decrypt)
            edges = {
                c.object_name: c.cursor.get("edge")
                for c in self.catalog.list_checkpoints(org, parent.snapshot_id)
                if c.state is ObjectState.DONE
            }
            checkpoints = [
                replace(c, cursor={**c.cursor, "parent_edge": edges.get(c.object_name)})
                if c.cursor.get("mode") == "delta" and edges.get(c.object_name)
                else c
                for c in checkpoints
            ]
        # Counts (purge check) and the deltas' first pages (change probe; with ``first_pages`` also
        # the read itself) share the Composite calls.
        probed = [
            c
            for c in checkpoints
            if c.cursor.get("mode") == "delta"
            and (first_pages or (c.cursor.get("count_check") and c.cursor.get("parent_edge")))
        ][:FIRST_PAGES_MAX]  # memory: at most this many first pages (of ≤ 200 records) at once
        counts, pages = self._count_and_first_pages(
            org, [c for c in checkpoints if c.cursor.get("count_check")], probed
        )
        unchanged: list[str] = []
        for cp in checkpoints:
            if cp.object_name in counts:
                cp = replace(cp, cursor={**cp.cursor, "sf_count": counts[cp.object_name]})
            page = pages.get(cp.object_name)
            if _unchanged(cp, page.records if page is not None and page.next is None else None):
                cp = _finished_unchanged(cp)
                unchanged.append(cp.object_name)
            elif page is not None and first_pages:
                self._first_pages[(org, run_id, cp.object_name)] = page
            self.catalog.put_checkpoint(cp)
        run = Run(
            org=org,
            run_id=run_id,
            kind=kind,
            status=RunStatus.RUNNING,
            started_at=now,
            parent_snapshot_id=parent.snapshot_id if parent else None,
            stats={
                "skipped": [asdict(s) for s in skipped],
                "removed": removed,
                "reconciled": reconcile or kind is RunKind.FULL,
                "salesforce_org_id": _safe_org_id(src),
                "lock_owner": self.owner,  # extract steps refresh the lock in its name
            },
        )
        self.catalog.put_run(run)
        return RunPlan(
            org=org,
            run_id=run_id,
            kind=kind,
            resumed=False,
            parent_snapshot_id=run.parent_snapshot_id,
            objects=tuple(p.name for p in plans if p.name not in unchanged),
            skipped=tuple(skipped),
            modes=modes,
            unchanged=tuple(unchanged),
        )

    def _reconcile_due(self, org: str) -> bool:
        every = self.settings.reconcile_every
        if every <= 1:
            return True
        since = 0
        for run in reversed(self.catalog.list_runs(org)):
            if run.status is not RunStatus.COMPLETED:
                continue
            if run.stats.get("reconciled") or run.kind is RunKind.FULL:
                break
            since += 1
        return since + 1 >= every

    # --- extract -----------------------------------------------------------------------------
    def extract_step(
        self,
        org: str,
        run_id: str,
        object_name: str,
        *,
        time_budget_s: float | None = None,
        checkpoint: Checkpoint | None = None,
        first_page: FirstPage | None = None,
    ) -> StepResult:
        """Continue ``object_name`` from its checkpoint for about ``time_budget_s`` seconds.
        Idempotent after a crash: it restarts from the last committed checkpoint. ``checkpoint``:
        the caller's copy of the latest committed checkpoint (the in-process driver passes
        ``StepResult.checkpoint`` back); ``None`` reads it from the catalog (Step Functions).
        ``first_page``: the object's :meth:`take_first_page`, used instead of reading only when the
        object's read has not started and starts with the very cursor the page was read with."""
        budget = self.settings.step_seconds if time_budget_s is None else time_budget_s
        deadline = time.monotonic() + budget
        cp = checkpoint if checkpoint is not None else self._checkpoint(org, run_id, object_name)
        if cp.state is not ObjectState.DONE:
            self.refresh_lock(org, run_id)
        calls0 = self.api_calls(org)
        stats = _StepStats()
        status, wait = StepStatus.DONE, 0.0
        if cp.state is not ObjectState.DONE:
            if cp.state is ObjectState.PENDING:
                cp = replace(cp, state=ObjectState.IN_PROGRESS, updated_at=self.clock())
                self.catalog.put_checkpoint(cp)
            conn = self.catalog.get_org(org)
            while True:
                phase = Phase(cp.cursor.get("phase", Phase.RECORDS.value))
                if phase is Phase.DONE:
                    cp = replace(cp, state=ObjectState.DONE, updated_at=self.clock())
                    self.catalog.put_checkpoint(cp)
                    status = StepStatus.DONE
                    break
                if phase is Phase.RECORDS and object_name.lower() in FILTERED_READS:
                    cp, status, wait = self._read_filtered(conn, run_id, cp, deadline, stats)
                elif phase is Phase.RECORDS:
                    cp, status, wait = self._read_records(conn, run_id, cp, deadline, stats, first_page)
                    first_page = None
                else:
                    cp, status, wait = self._read_ids(conn, run_id, cp, deadline, stats)
                if status is not StepStatus.DONE:
                    break
        return StepResult(
            org=org,
            run_id=run_id,
            object_name=object_name,
            status=status,
            wait_seconds=wait,
            records=stats.records,
            tombstones=stats.tombstones,
            files=stats.files,
            plain_bytes=stats.plain_bytes,
            stored_bytes=stats.stored_bytes,
            api_calls=self.api_calls(org) - calls0,
            checkpoint=cp,
        )

    def refresh_lock(self, org: str, run_id: str) -> None:
        """Extend the run lock (``lock_ttl_seconds`` from now) in the name of the run's owner, which
        may be another process: in the cloud the lock belongs to the Step Functions execution and the
        extract steps run as separate Lambdas. Skipped when the lock was refreshed less than a minute
        ago, when there is no lock (released: the run was stopped; a late step must not re-take it)
        or when it is held by someone else (never taken over here)."""
        owner = str(self.catalog.get_run(org, run_id).stats.get("lock_owner") or self.owner)
        now = self.clock()
        lock = self.catalog.get_lock(org)
        ttl = self.settings.lock_ttl_seconds
        if lock is None or lock.owner != owner or lock.expires_at - now > timedelta(seconds=ttl - 60):
            return
        try:
            self.catalog.acquire_lock(org, owner, now=now, ttl_seconds=ttl)
        except RunInProgress:  # taken by another run in between: its lock, not ours to refresh
            return

    def _checkpoint(self, org: str, run_id: str, object_name: str) -> Checkpoint:
        for cp in self.catalog.list_checkpoints(org, run_id):
            if cp.object_name == object_name:
                return cp
        raise PermanentError(f"run {run_id} of org {org!r} has no object {object_name!r}")

    def _prefetch_describes(self, org: str, names: list[str]) -> None:
        """Describe ``names`` in batches when the source can (Composite: 25 per API call); what
        fails is left to the per-object describe, which reports it."""
        many = getattr(self.source(org), "describe_many", None)
        todo = [n for n in names if (org, n) not in self._schemas]
        if many is None or not todo:
            return
        for name, schema in many(todo).items():
            self._schemas[(org, name)] = schema

    def _count_and_first_pages(
        self, org: str, counted: list[Checkpoint], probed: list[Checkpoint]
    ) -> tuple[dict[str, int], dict[str, FirstPage]]:
        """``SELECT COUNT()`` of the ``counted`` objects and the first page of the ``probed`` deltas'
        reads (the very query their extract would send), batched in Composite calls when the source
        can, each with its continuation (``next``) when the delta is longer. Whatever is missing from
        the answer (the source cannot batch, a sub-request or the whole call failed) is simply absent:
        the object is then read (and counted after its read) as usual."""
        src = self.source(org)
        count_args = [(c.object_name, "IsDeleted" in c.cursor.get("fields", [])) for c in counted]
        both = getattr(src, "count_and_first_pages", None)
        try:
            if both is not None and (counted or probed):
                reads: list[tuple[str, dict[str, Any]]] = []
                for c in probed:
                    try:  # the extract's own start_read (a REST one makes no call)
                        cursor = src.start_read(
                            self._describe(org, c.object_name),
                            list(c.cursor["fields"]),
                            strategy="rest",
                            where=_delta_where(c.cursor),
                            include_deleted=True,
                        )
                    except SalesforceRequestError:
                        continue  # not probed: read (and reported) by its extract as usual
                    if cursor.get("kind") == "rest":
                        reads.append((c.object_name, cursor))
                counts, pages = both(count_args, reads)
                start = dict(reads)
                return dict(counts), {
                    name: FirstPage(cursor=start[name], records=list(page.records), next=page.cursor)
                    for name, page in pages.items()
                    if name in start
                }
            many = getattr(src, "count_many", None)
            if many is not None and counted:
                return dict(many(count_args)), {}
        except SalesforceRequestError:
            pass
        return {}, {}

    def _describe(self, org: str, object_name: str) -> ObjectSchema:
        key = (org, object_name)
        schema = self._schemas.get(key)
        if schema is None:
            schema = self.source(org).describe(object_name)
            self._schemas[key] = schema
        return schema

    def _start_read(
        self,
        conn: OrgConnection,
        cp: Checkpoint,
        *,
        fields: list[str],
        where: str | None,
        strategy: str | None = None,
    ) -> Checkpoint:
        src = self.source(conn.name)
        schema = self._describe(conn.name, cp.object_name)
        strategy = strategy or cp.strategy or "rest"
        try:
            cursor = src.start_read(schema, fields, strategy=strategy, where=where, include_deleted=True)
        except BulkNotSupported:
            strategy = "rest"
            cursor = src.start_read(schema, fields, strategy=strategy, where=where, include_deleted=True)
        cp = replace(cp, strategy=strategy, cursor={**cp.cursor, "read": cursor}, updated_at=self.clock())
        self.catalog.put_checkpoint(cp)
        return cp

    def _read_records(
        self,
        conn: OrgConnection,
        run_id: str,
        cp: Checkpoint,
        deadline: float,
        stats: _StepStats,
        first_page: FirstPage | None = None,
    ) -> tuple[Checkpoint, StepStatus, float]:
        org = conn.name
        src = self.source(org)
        cur = cp.cursor
        mode = cur.get("mode", "full")
        kind = ChunkKind.RECORDS if mode == "full" else ChunkKind.DELTA
        fields = list(cur["fields"])
        file_fields = list(cur.get("file_fields", []))
        where = _delta_where(cur)
        given: RecordPage | None = None  # the delta's first page, read at plan time
        if cur.get("read") is None:
            cp = self._start_read(conn, cp, fields=fields, where=where)
            if (
                first_page is not None
                and cp.next_seq == 0
                and cp.records == 0
                and cp.cursor["read"] == first_page.cursor
            ):
                given = RecordPage(records=list(first_page.records), cursor=first_page.next)
        buf = _Buffer()
        tombs: list[dict[str, Any]] = []
        watermark = cp.watermark
        read_cursor: dict[str, Any] | None = cp.cursor["read"]
        restarts = 0
        # Delta only: records created after the parent's watermark (not in the parent) and existing
        # records deleted since; committed in the cursor with the pages they come from.
        prev_wm = str(cur.get("prev_watermark") or "")
        new_n, gone_n = int(cp.cursor.get("new_records", 0)), int(cp.cursor.get("gone_records", 0))
        # The overlap window re-reads records the parent already holds in this exact version: skip
        # them (same Id and SystemModstamp as the parent read near its watermark), and note this
        # read's own edge for the next run.
        parent_edge: dict[str, str] = dict(cur.get("parent_edge") or {}) if mode == "delta" else {}
        edge = _Edge(cp.cursor.get("edge", {}), self.settings.overlap_seconds)
        while True:
            try:
                if given is not None:
                    page, given = given, None
                else:
                    page = src.read_page(read_cursor)  # type: ignore[arg-type]
            except BulkNotSupported:
                if cp.next_seq > cp.cursor.get("base_from_seq", 0) or buf.count:
                    raise
                cp = replace(cp, strategy="rest", cursor={**cp.cursor, "read": None})
                cp = self._start_read(conn, cp, fields=fields, where=where)
                read_cursor = cp.cursor["read"]
                continue
            except QueryLocatorExpired:
                # Start the object's read again; chunks already committed by this run for it are
                # superseded (finalize uses only seq >= base_from_seq). Bounded: a cursor that keeps
                # expiring fails the run (resumable) instead of looping.
                restarts += 1
                if restarts > MAX_READ_RESTARTS:
                    raise
                cp = replace(
                    cp,
                    cursor={
                        **cp.cursor,
                        "read": None,
                        "base_from_seq": cp.next_seq,
                        "new_records": 0,
                        "gone_records": 0,
                    },
                    records=0,
                )
                self.catalog.put_checkpoint(cp)
                buf, tombs = _Buffer(), []
                new_n = gone_n = 0
                edge = _Edge({}, self.settings.overlap_seconds)
                cp = self._start_read(conn, cp, fields=fields, where=where)
                read_cursor = cp.cursor["read"]
                continue
            if page.wait_seconds > 0 and not page.records:
                final = {
                    **cp.cursor,
                    "read": page.cursor,
                    "new_records": new_n,
                    "gone_records": gone_n,
                    "edge": edge.state(watermark),
                }
                cp = self._flush(conn, run_id, cp, kind, buf, tombs, final, watermark, stats)
                return cp, StepStatus.WAIT, page.wait_seconds
            for rec in page.records:
                stamp = rec.get("SystemModstamp")
                if isinstance(stamp, str):
                    edge.add(rec["Id"], stamp, watermark)
                    if parent_edge and parent_edge.get(rec["Id"]) == stamp:
                        continue  # the parent holds this very version
                if mode == "delta":
                    created = str(rec.get("CreatedDate") or "")
                    if rec.get("IsDeleted") is True:
                        if created and created <= prev_wm < str(rec.get("SystemModstamp") or ""):
                            gone_n += 1
                    elif created > prev_wm:
                        new_n += 1
                if rec.get("IsDeleted") is True:
                    if mode == "delta":
                        tombs.append({"Id": rec["Id"], "deletedDate": rec.get("SystemModstamp")})
                    continue
                if file_fields:
                    self._attach_files(conn, cp.object_name, rec, file_fields, stats)
                buf.add(rec)
                if isinstance(stamp, str) and (watermark is None or stamp > watermark):
                    watermark = stamp
            read_cursor = page.cursor
            counts = {"new_records": new_n, "gone_records": gone_n, "edge": edge.state(watermark)}
            if read_cursor is None:
                next_phase = Phase.IDS if cur.get("reconcile") else Phase.DONE
                counts["edge"] = edge.final(watermark)
                final = {**cp.cursor, "phase": next_phase.value, "read": None, **counts}
                if mode == "delta" and cur.get("count_check") and not cur.get("reconcile"):
                    final.update(self._count_check(org, cp.object_name, cur, new_n, gone_n))
                    if final.get("reconcile"):
                        final["phase"] = Phase.IDS.value
                cp = self._flush(conn, run_id, cp, kind, buf, tombs, final, watermark, stats)
                return cp, StepStatus.DONE, 0.0
            if (
                buf.count + len(tombs) >= self.settings.chunk_records
                or buf.bytes >= self.settings.chunk_bytes
                or time.monotonic() >= deadline
            ):
                final = {**cp.cursor, "read": read_cursor, **counts}
                cp = self._flush(conn, run_id, cp, kind, buf, tombs, final, watermark, stats)
                buf, tombs = _Buffer(), []
                if time.monotonic() >= deadline:
                    return cp, StepStatus.MORE, 0.0

    def _count_check(
        self, org: str, object_name: str, cur: dict[str, Any], new_n: int, gone_n: int
    ) -> dict[str, Any]:
        """The purge trigger (see the module docstring): the snapshot's count derived without
        decrypting (parent count + created − deleted) against ``SELECT COUNT()``. Equal: the count
        is recorded (``live_count``: finalize need not count). Different: the object is reconciled
        now (``reconcile``). No count available (the source cannot count, or the object refuses
        COUNT()): nothing changes (finalize counts from the vault)."""
        expected = int(cur["prev_records"]) + new_n - gone_n
        if cur.get("sf_count") == expected:  # counted in start_run, with the other objects
            return {"live_count": expected}
        # No batched count, or it differs (a change between the count and the read is enough):
        # count again now, right after the read.
        counter = getattr(self.source(org), "count_records", None)
        if counter is None:
            return {}
        try:
            actual = int(counter(object_name, query_all="IsDeleted" in cur.get("fields", [])))
        except SalesforceRequestError:
            return {}
        if actual == expected:
            return {"live_count": expected}
        return {"reconcile": True, "reconcile_reason": f"count {actual} != derived {expected}"}

    def _read_filtered(
        self, conn: OrgConnection, run_id: str, cp: Checkpoint, deadline: float, stats: _StepStats
    ) -> tuple[Checkpoint, StepStatus, float]:
        """A full read of an object that must be filtered by parent ids: page through the parent's
        Ids (REST, replayable cursors) and, per batch of ``FILTER_BATCH`` of them, read the object
        ``WHERE fk IN (...)``. The checkpoint holds the parent page cursor, the batch index and the
        child cursor, and moves only at child page boundaries, like any other read."""
        org = conn.name
        src = self.source(org)
        fk, parent_name = FILTERED_READS[cp.object_name.lower()]
        fields = list(cp.cursor["fields"])
        buf = _Buffer()
        watermark = cp.watermark
        cur = dict(cp.cursor)  # the working position; ``cp`` stays the last committed checkpoint
        cached: tuple[str, list[str], dict[str, Any] | None] | None = None
        while True:
            parent = cur.get("parent")
            if parent is None:
                first = src.start_read(
                    self._describe(org, parent_name), ["Id"], strategy="rest", include_deleted=True
                )
                cur = {**cur, "parent": {"page": first, "batch": 0}, "read": None}
                cp = replace(cp, strategy="rest", cursor=cur)
                self.catalog.put_checkpoint(cp)
                parent = cur["parent"]
            key = json.dumps(parent["page"], sort_keys=True)
            if cached is None or cached[0] != key:
                ppage = src.read_page(parent["page"])
                cached = (key, [r["Id"] for r in ppage.records], ppage.cursor)
            ids, next_page = cached[1], cached[2]
            start = parent["batch"] * FILTER_BATCH
            if start >= len(ids):
                if next_page is None:
                    final = {**cur, "phase": Phase.DONE.value, "parent": None, "read": None}
                    cp = self._flush(conn, run_id, cp, ChunkKind.RECORDS, buf, [], final, watermark, stats)
                    return cp, StepStatus.DONE, 0.0
                cur = {**cur, "parent": {"page": next_page, "batch": 0}, "read": None}
                continue
            read_cursor = cur.get("read")
            if read_cursor is None:
                schema = self._describe(org, cp.object_name)
                read_cursor = _filtered_batch_read(src, schema, fields, fk, ids[start : start + FILTER_BATCH])
                following = ids[start + FILTER_BATCH : start + 2 * FILTER_BATCH]
                prefetch = getattr(src, "prefetch_read", None)
                if following and prefetch is not None:  # the next batch's query runs meanwhile
                    prefetch(_filtered_batch_read(src, schema, fields, fk, following))
            page = src.read_page(read_cursor)
            for rec in page.records:
                if rec.get("IsDeleted") is True:
                    continue
                buf.add(rec)
                stamp = rec.get("SystemModstamp")
                if isinstance(stamp, str) and (watermark is None or stamp > watermark):
                    watermark = stamp
            if page.cursor is None:  # this batch is done: the next one starts with a fresh read
                cur = {**cur, "parent": {**parent, "batch": parent["batch"] + 1}, "read": None}
            else:
                cur = {**cur, "read": page.cursor}
            if (
                page.cursor is not None
                or buf.count >= self.settings.chunk_records
                or time.monotonic() >= deadline
            ):
                cp = self._flush(conn, run_id, cp, ChunkKind.RECORDS, buf, [], cur, watermark, stats)
                buf = _Buffer()
                if time.monotonic() >= deadline:
                    return cp, StepStatus.MORE, 0.0

    def _flush(
        self,
        conn: OrgConnection,
        run_id: str,
        cp: Checkpoint,
        kind: ChunkKind,
        buf: _Buffer,
        tombs: list[dict[str, Any]],
        final_cursor: dict[str, Any],
        watermark: str | None,
        stats: _StepStats,
    ) -> Checkpoint:
        """Seal and commit the buffered records (and tombstones), ``cp`` being the last committed
        checkpoint. Only the last commit moves the cursor to ``final_cursor`` (and the watermark):
        a crash in between re-reads the same pages (tombstones twice: harmless)."""
        pending: list[tuple[ChunkKind, Any, list[str] | None]] = []
        if tombs:
            pending.append((ChunkKind.TOMBSTONES, tombs, None))
        pending.extend((kind, encoded, ids) for encoded, ids in buf.chunks())
        if not pending:
            cp = replace(cp, cursor=final_cursor, watermark=watermark, updated_at=self.clock())
            self.catalog.put_checkpoint(cp)
            return cp
        for i, (k, records, ids) in enumerate(pending):
            last = i == len(pending) - 1
            chunk = glue.write_chunk(self.vault, conn, run_id, cp.object_name, cp.next_seq, k, records, ids)
            n_live = chunk.records if k in (ChunkKind.RECORDS, ChunkKind.DELTA) else 0
            cp = replace(
                cp,
                next_seq=cp.next_seq + 1,
                records=cp.records + n_live,
                cursor=final_cursor if last else cp.cursor,
                watermark=watermark if last else cp.watermark,
                updated_at=self.clock(),
            )
            self.catalog.record_chunk(chunk, cp)
            stats.add_chunk(chunk, k)
            if self.chunk_hook is not None:
                self.chunk_hook(cp.object_name, k.value, chunk.seq)
        return cp

    def _attach_files(
        self, conn: OrgConnection, obj: str, rec: dict[str, Any], file_fields: list[str], stats: _StepStats
    ) -> None:
        """Download each file body once (ContentVersion never twice; Attachment/Document again only
        when the record's SystemModstamp changed) and replace the field by a file reference."""
        org = conn.name
        for fname in file_fields:
            source_name = f"{obj}/{rec['Id']}/{fname}"
            stamp = rec.get("SystemModstamp") or ""
            known = self.catalog.get_file(org, source_name)
            if known is not None and (obj == "ContentVersion" or known.source_stamp == stamp):
                rec[fname] = glue.file_ref(known)
                continue
            try:
                parts = self.source(org).download(obj, rec["Id"], fname)
                frec = glue.write_file(self.vault, conn, source_name, parts, stamp)
            except SalesforceRequestError as exc:
                if exc.status == 404 or exc.error_code == "NOT_FOUND":
                    rec[fname] = None
                    continue
                raise
            self.catalog.put_file(frec)
            stats.files += 1
            rec[fname] = glue.file_ref(frec)

    def _read_ids(
        self, conn: OrgConnection, run_id: str, cp: Checkpoint, deadline: float, stats: _StepStats
    ) -> tuple[Checkpoint, StepStatus, float]:
        """Reconciliation: read every live Id into IDS chunks; at the end, every record of the
        snapshot (parent + this run's deltas) whose Id is gone gets a tombstone."""
        org = conn.name
        src = self.source(org)
        if cp.cursor.get("read") is None and not cp.cursor.get("ids_done"):
            id_fields = ["Id", "IsDeleted"] if "IsDeleted" in cp.cursor.get("fields", []) else ["Id"]
            cp = self._start_read(
                conn, cp, fields=id_fields, where=None, strategy=cp.cursor.get("bulk_strategy")
            )
        buf = _Buffer()
        read_cursor: dict[str, Any] | None = cp.cursor["read"]
        while not cp.cursor.get("ids_done"):
            page = src.read_page(read_cursor)  # type: ignore[arg-type]
            if page.wait_seconds > 0 and not page.records:
                final = {**cp.cursor, "read": page.cursor}
                cp = self._flush(conn, run_id, cp, ChunkKind.IDS, buf, [], final, cp.watermark, stats)
                return cp, StepStatus.WAIT, page.wait_seconds
            for rec in page.records:
                if rec.get("IsDeleted") is not True:
                    buf.add({"Id": rec["Id"]})
            read_cursor = page.cursor
            if read_cursor is None:
                final = {**cp.cursor, "ids_done": True, "read": None}
                cp = self._flush(conn, run_id, cp, ChunkKind.IDS, buf, [], final, cp.watermark, stats)
                break
            if buf.count >= self.settings.chunk_records * 4 or time.monotonic() >= deadline:
                final = {**cp.cursor, "read": read_cursor}
                cp = self._flush(conn, run_id, cp, ChunkKind.IDS, buf, [], final, cp.watermark, stats)
                buf = _Buffer()
                if time.monotonic() >= deadline:
                    return cp, StepStatus.MORE, 0.0
        # All ids are committed (sealed: encrypt only). Comparing them with the parent snapshot needs
        # decrypting, which the extract step must never do: ``finalize_run`` does it (_reconcile).
        final = {**cp.cursor, "phase": Phase.DONE.value, "read": None, "reconcile_pending": True}
        cp = replace(cp, cursor=final, updated_at=self.clock())
        self.catalog.put_checkpoint(cp)
        return cp, StepStatus.DONE, 0.0

    def _reconcile(
        self, conn: OrgConnection, run: Run, cp: Checkpoint, parent_manifest: Any, stats: _StepStats
    ) -> Checkpoint:
        """Finalize side of reconciliation (decrypts; the extract step only wrote the IDS chunks):
        every record of the snapshot (parent + this run's deltas) whose Id is not among the live Ids
        read gets a tombstone, and the object's live count becomes exact. The tombstone chunk and
        the checkpoint (``reconcile_pending`` cleared) commit together, so repeating is safe."""
        org = conn.name
        base = int(cp.cursor.get("base_from_seq", 0))
        chunks = [c for c in self.catalog.list_chunks(org, run.run_id, cp.object_name) if c.seq >= base]
        live: set[str] = set()
        for ch in chunks:
            if ch.kind is ChunkKind.IDS:
                live.update(glue.chunk_ids(self.vault, org, cp.object_name, ch))
        known: set[str] = set()
        if parent_manifest is not None and cp.object_name in parent_manifest.objects:
            known.update(glue.live_ids(self.vault, org, parent_manifest.objects[cp.object_name]))
        for ch in sorted(chunks, key=lambda c: c.seq):
            if ch.kind is ChunkKind.DELTA:
                known.update(glue.chunk_ids(self.vault, org, cp.object_name, ch))
            elif ch.kind is ChunkKind.TOMBSTONES:
                known.difference_update(glue.chunk_ids(self.vault, org, cp.object_name, ch))
        gone = sorted(known - live)
        final = {**cp.cursor, "reconcile_pending": False, "live_count": len(known & live)}
        tombs = [{"Id": i, "deletedDate": None} for i in gone]
        cp = self._flush(conn, run.run_id, cp, ChunkKind.DELTA, _Buffer(), tombs, final, cp.watermark, stats)
        stats.reconciled_gone += len(gone)
        return cp

    # --- finalize ----------------------------------------------------------------------------
    def finalize_run(self, org: str, run_id: str) -> SnapshotRecord:
        """Build the manifest from the parent + this run's chunks, write it last, commit the
        snapshot (compare-and-set on the head), mark the run COMPLETED and release the lock.
        Repeating it after a crash is safe. Raises ``PermanentError`` if objects are unfinished,
        ``ConcurrentCommit`` if the head moved."""
        conn = self.catalog.get_org(org)
        run = self.catalog.get_run(org, run_id)
        try:
            done = self.catalog.get_snapshot(org, run_id)
        except OrgVaultError:
            done = None
        if done is None:
            cps = self.catalog.list_checkpoints(org, run_id)
            unfinished = [c.object_name for c in cps if c.state is not ObjectState.DONE]
            if unfinished:
                raise PermanentError(
                    f"run {run_id} still has unfinished objects ({', '.join(unfinished[:5])}); extract them first"
                )
            parent = (
                self.catalog.get_snapshot(org, run.parent_snapshot_id) if run.parent_snapshot_id else None
            )
            pending = [c for c in cps if c.cursor.get("reconcile_pending")]
            if pending:
                parent_manifest = glue.read_manifest(self.vault, self.catalog, parent) if parent else None
                stats = _StepStats()
                for cp in pending:
                    self._reconcile(conn, run, cp, parent_manifest, stats)
                cps = self.catalog.list_checkpoints(org, run_id)
            chunks = [
                ch
                for cp in cps
                for ch in self.catalog.list_chunks(org, run_id, cp.object_name)
                if ch.kind is not ChunkKind.IDS and ch.seq >= int(cp.cursor.get("base_from_seq", 0))
            ]
            done = glue.commit_snapshot(
                self.vault,
                self.catalog,
                conn,
                run,
                parent,
                cps,
                chunks,
                now=self.clock(),
                salesforce_org_id=str(run.stats.get("salesforce_org_id", "")),
            )
        self.catalog.put_run(
            replace(
                run,
                status=RunStatus.COMPLETED,
                finished_at=self.clock(),
                message="",
                stats={**run.stats, "records": done.records, "objects": done.objects},
            )
        )
        self.catalog.release_lock(org, self.owner)
        return done

    def stop_run(self, org: str, run_id: str, *, status: RunStatus, message: str) -> None:
        """Mark a run PAUSED or FAILED (resumable from its checkpoints) and release the lock."""
        run = self.catalog.get_run(org, run_id)
        self.catalog.put_run(replace(run, status=status, message=message[:500], finished_at=self.clock()))
        self.catalog.release_lock(org, self.owner)

    # --- local driver ------------------------------------------------------------------------
    def run_backup(
        self,
        org: str,
        *,
        full: bool = False,
        progress: ProgressFn | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> BackupResult:
        """Run start → extract (every object, honouring waits by sleeping) → finalize.
        With an ``extract_pool`` (and more than one object to read, and no ``chunk_hook``) the
        objects are extracted by the pool's workers, largest first (see :meth:`extraction_order`);
        ``progress`` still receives every step's counters, in this thread, and this process keeps
        the lock alive. Otherwise every step runs here, one object after another.
        ``ApiBudgetExhausted`` (from any worker too): the run is PAUSED and the error re-raised with
        what to do. Any other error: the run is FAILED (resumable) and the error re-raised (from a
        worker: the same ``OrgVaultError`` class, else ``WorkerFailed``), after every worker stopped."""
        pool = self.extract_pool if self.chunk_hook is None else None
        if pool is None or pool.workers < 2:
            return self._run_backup(org, full=full, progress=progress, sleep=sleep)
        if full or self.catalog.head_snapshot(org) is None:  # a full read is coming (see _parallel)
            pool.warm_up()  # worker start-up overlaps start_run's planning
        try:
            return self._run_backup(org, full=full, progress=progress, sleep=sleep)
        finally:
            pool.close()

    def _run_backup(
        self, org: str, *, full: bool, progress: ProgressFn | None, sleep: Callable[[float], None]
    ) -> BackupResult:
        t0 = time.monotonic()
        try:
            plan = self.start_run(org, full=full, first_pages=True)
        except ApiBudgetExhausted as exc:
            raise ApiBudgetExhausted(
                f"backup of {org!r} could not start: the API allowance share is used up ({exc}); "
                f"run `orgvault backup {org}` again later"
            ) from exc
        totals = _StepStats()
        last_refresh = time.monotonic()
        worker_calls = 0  # API calls made by worker processes (the parent's source counts its own)
        try:
            if self._parallel(plan):  # full runs only: no object was finished at plan time
                worker_calls = self._extract_parallel(org, plan, totals, progress)
            else:
                # One catalog read for every object's first step (this process holds the run's lock:
                # nothing else moves them), instead of one list per object.
                first = {c.object_name: c for c in self.catalog.list_checkpoints(org, plan.run_id)}
                for obj in _progress_order(plan):
                    prog = ObjectProgress(obj)
                    if obj in plan.unchanged and obj not in plan.objects:  # finished at plan time
                        prog.done = True
                        if progress:
                            progress(prog)
                        continue
                    o0 = time.monotonic()
                    cp_hint: Checkpoint | None = first.get(obj)
                    while True:
                        res = self.extract_step(
                            org,
                            plan.run_id,
                            obj,
                            checkpoint=cp_hint,
                            first_page=self.take_first_page(org, plan.run_id, obj),
                        )
                        cp_hint = res.checkpoint
                        if time.monotonic() - last_refresh > 60:  # keep the lock alive on long runs
                            self.catalog.acquire_lock(
                                org, self.owner, now=self.clock(), ttl_seconds=self.settings.lock_ttl_seconds
                            )
                            last_refresh = time.monotonic()
                        totals.merge(res)
                        prog.records += res.records
                        prog.files += res.files
                        prog.plain_bytes += res.plain_bytes
                        prog.stored_bytes += res.stored_bytes
                        prog.api_calls += res.api_calls
                        prog.seconds = time.monotonic() - o0
                        if res.status is StepStatus.DONE:
                            prog.done = True
                        if progress:
                            progress(prog)
                        if prog.done:
                            break
                        if res.status is StepStatus.WAIT:
                            sleep(min(res.wait_seconds, 30.0))
            snap = self.finalize_run(org, plan.run_id)
        except ApiBudgetExhausted as exc:
            self.stop_run(org, plan.run_id, status=RunStatus.PAUSED, message=str(exc))
            raise ApiBudgetExhausted(
                f"backup of {org!r} paused: the API allowance share is used up ({exc}); "
                f"run `orgvault backup {org}` again later to resume run {plan.run_id}"
            ) from exc
        except BaseException as exc:
            self.stop_run(org, plan.run_id, status=RunStatus.FAILED, message=f"{type(exc).__name__}: {exc}")
            raise
        finally:  # pages of objects never extracted (a failure) are not kept
            for key in [k for k in self._first_pages if k[:2] == (org, plan.run_id)]:
                del self._first_pages[key]
        run = self.catalog.get_run(org, plan.run_id)
        return BackupResult(
            snapshot=snap,
            run=run,
            objects=snap.objects,
            records=snap.records,
            files=totals.files,
            plain_bytes=totals.plain_bytes,
            stored_bytes=totals.stored_bytes,
            api_calls=self.api_calls(org) + worker_calls,
            seconds=time.monotonic() - t0,
            skipped=plan.skipped,
            records_read=totals.records,
            tombstones=totals.tombstones,
        )

    # --- several objects at once ----------------------------------------------------------------
    def _parallel(self, plan: RunPlan) -> bool:
        """Workers for full runs only: an incremental reads small deltas, for which starting worker
        processes (interpreter, imports, a login each: ~0.5 s of CPU apiece) costs more than it
        saves. A chunk_hook is a test's in-process callback: it cannot follow the work elsewhere."""
        return (
            self.extract_pool is not None
            and self.extract_pool.workers > 1
            and self.chunk_hook is None
            and plan.kind is RunKind.FULL
            and len(plan.objects) > 1
        )

    def extraction_order(self, org: str, plan: RunPlan) -> list[str]:
        """``plan.objects`` largest (estimated remaining work) first, so that the longest object is
        not the last to start. The estimate is the object's record count in the parent snapshot's
        manifest; objects the parent does not hold are estimated from Salesforce's approximate record
        counts (``/limits/recordCount``, one API call) when the source can; records already committed by this run
        are subtracted; file objects weigh ``FILE_RECORD_WEIGHT`` per record. Objects without an
        estimate go last, in plan order. Raises what the source raises (``ApiBudgetExhausted``)."""
        if len(plan.objects) < 2:
            return list(plan.objects)
        cps = {c.object_name: c for c in self.catalog.list_checkpoints(org, plan.run_id)}
        estimate: dict[str, int] = {}
        if plan.parent_snapshot_id:
            parent = self.catalog.get_snapshot(org, plan.parent_snapshot_id)
            manifest = glue.read_manifest(self.vault, self.catalog, parent)
            for name in plan.objects:
                if name in manifest.objects:
                    estimate[name] = int(manifest.objects[name].records)
        missing = [n for n in plan.objects if n not in estimate and n.lower() not in FILTERED_READS]
        counts = getattr(self.source(org), "record_counts", None)
        if missing and counts is not None:
            # approximate counts, one API call for all: enough to order by size; without them
            # those objects go last, in plan order
            with contextlib.suppress(SalesforceRequestError):
                estimate.update(counts(missing))

        def remaining(name: str) -> int:
            cp = cps.get(name)
            n = estimate.get(name, 0)
            if cp is not None:
                if cp.cursor.get("mode", "full") == "full":
                    n = max(n - cp.records, 0)
                if cp.cursor.get("file_fields"):
                    n *= FILE_RECORD_WEIGHT
            return n

        position = {name: i for i, name in enumerate(plan.objects)}
        return sorted(plan.objects, key=lambda n: (-remaining(n), position[n]))

    def _extract_parallel(
        self, org: str, plan: RunPlan, totals: _StepStats, progress: ProgressFn | None
    ) -> int:
        """Every object of ``plan`` through the pool; returns the workers' API calls."""
        assert self.extract_pool is not None
        tasks = [
            ExtractTask(org, plan.run_id, name, self._known_schemas(org, name))
            for name in self.extraction_order(org, plan)
        ]
        progs: dict[str, ObjectProgress] = {}
        started: dict[str, float] = {}
        calls = 0
        last_refresh = time.monotonic()

        def on_start(name: str) -> None:
            started[name] = time.monotonic()
            progs[name] = ObjectProgress(name)

        def on_step(res: StepResult) -> None:
            nonlocal calls
            totals.merge(res)
            calls += res.api_calls
            prog = progs.setdefault(res.object_name, ObjectProgress(res.object_name))
            prog.records += res.records
            prog.files += res.files
            prog.plain_bytes += res.plain_bytes
            prog.stored_bytes += res.stored_bytes
            prog.api_calls += res.api_calls
            prog.seconds = time.monotonic() - started.get(res.object_name, time.monotonic())
            prog.done = res.status is StepStatus.DONE
            if progress:
                progress(prog)

        def idle() -> None:
            nonlocal last_refresh
            if time.monotonic() - last_refresh > 60:  # keep the lock alive while the workers run
                self.catalog.acquire_lock(
                    org, self.owner, now=self.clock(), ttl_seconds=self.settings.lock_ttl_seconds
                )
                last_refresh = time.monotonic()

        self.extract_pool.run(tasks, on_start=on_start, on_step=on_step, idle=idle)
        return calls

    def _known_schemas(self, org: str, name: str) -> dict[str, ObjectSchema]:
        names = [name] + ([FILTERED_READS[name.lower()][1]] if name.lower() in FILTERED_READS else [])
        return {n: self._schemas[(org, n)] for n in names if (org, n) in self._schemas}

    def run_task(
        self,
        task: ExtractTask,
        *,
        on_step: Callable[[StepResult], None],
        sleep: Callable[[float], None] = time.sleep,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        """Worker side of :class:`ExtractPool`: extract ``task.object_name`` to DONE, step by step
        (WAIT: ``sleep`` then ask again), calling ``on_step`` after each committed step and
        ``after_commit`` after each committed chunk (a worker checks there that its parent lives).
        Errors propagate; whatever was committed stays (the next run resumes from the checkpoint)."""
        for name, schema in task.schemas.items():
            self._schemas.setdefault((task.org, name), schema)
        hook = self.chunk_hook
        if after_commit is not None:

            def chained(obj: str, kind: str, seq: int) -> None:
                if hook is not None:
                    hook(obj, kind, seq)
                after_commit()

            self.chunk_hook = chained
        try:
            cp_hint: Checkpoint | None = None
            while True:
                res = self.extract_step(task.org, task.run_id, task.object_name, checkpoint=cp_hint)
                cp_hint = res.checkpoint
                on_step(res)
                if res.status is StepStatus.DONE:
                    return
                if res.status is StepStatus.WAIT:
                    sleep(min(res.wait_seconds, 30.0))
        finally:
            self.chunk_hook = hook


# --- internals -------------------------------------------------------------------------------


EDGE_MAX = 200  # most records kept per object as "read near the watermark" (else none are)
_STAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


class _Edge:
    """Ids → SystemModstamp of the records read within ``overlap`` seconds of the watermark (what
    the next run's overlap window will return again). At most ``EDGE_MAX`` at the end (2× while
    reading); beyond that, or for stamps in another format, nothing is kept (``state`` None) and
    the next run simply re-writes its overlap rows."""

    __slots__ = ("_overlap", "_thr", "items")

    def __init__(self, saved: dict[str, str] | None, overlap_s: int) -> None:
        self.items: dict[str, str] | None = dict(saved) if saved is not None else None
        self._overlap = timedelta(seconds=overlap_s)
        self._thr = ""

    def add(self, rid: str, stamp: str, watermark: str | None) -> None:
        if self.items is None or stamp < self._thr:
            return
        self.items[rid] = stamp
        if len(self.items) > 2 * EDGE_MAX:
            self._prune(stamp if watermark is None or stamp > watermark else watermark, limit=2 * EDGE_MAX)

    def _prune(self, watermark: str | None, *, limit: int) -> None:
        if self.items is None or watermark is None:
            return
        if not _STAMP_RE.match(watermark):
            self.items = None
            return
        t = sf_datetime(watermark) - self._overlap
        self._thr = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"
        self.items = {k: v for k, v in self.items.items() if v >= self._thr}
        if len(self.items) > limit:
            self.items = None

    def state(self, watermark: str | None) -> dict[str, str] | None:
        """What to commit in the cursor (pruned to the watermark so far; None: not kept)."""
        self._prune(watermark, limit=2 * EDGE_MAX)
        return None if self.items is None else dict(self.items)

    def final(self, watermark: str | None) -> dict[str, str] | None:
        self._prune(watermark, limit=EDGE_MAX)
        return None if self.items is None else dict(self.items)


class _Buffer:
    """Records waiting for a page boundary, encoded as they arrive (so the chunk is built once and
    its exact size is known). The builder's bounds are unbounded: the caller closes chunks, only on
    page boundaries. A change of field set closes a chunk early (kept in ``closed``). The Ids of
    each chunk are kept alongside (for the chunk's id index, written with it)."""

    __slots__ = ("_builder", "_ids", "closed", "count")

    def __init__(self) -> None:
        self._builder = ChunkBuilder(max_bytes=2**62, max_records=2**62)
        self.closed: list[tuple[EncodedChunk, list[str]]] = []
        self._ids: list[str] = []
        self.count = 0

    def add(self, rec: dict[str, Any]) -> None:
        done = self._builder.add(rec)
        if done is not None:  # closed before ``rec`` was added: it holds the pending records
            self.closed.append((done, self._ids))
            self._ids = []
        rid = rec.get("Id")
        if isinstance(rid, str) and rid:
            self._ids.append(rid)
        self.count += 1

    @property
    def bytes(self) -> int:
        return self._builder.pending_bytes + sum(c.plain_bytes for c, _ in self.closed)

    def chunks(self) -> list[tuple[EncodedChunk, list[str]]]:
        last = self._builder.flush()
        out = self.closed + ([(last, self._ids)] if last is not None else [])
        self.closed, self._ids, self.count = [], [], 0
        return out


@dataclass
class _StepStats:
    records: int = 0
    tombstones: int = 0
    files: int = 0
    plain_bytes: int = 0
    stored_bytes: int = 0
    reconciled_gone: int = 0

    def add_chunk(self, chunk: ChunkRecord, kind: ChunkKind) -> None:
        if kind is ChunkKind.TOMBSTONES:
            self.tombstones += chunk.records
        elif kind is not ChunkKind.IDS:
            self.records += chunk.records
        self.plain_bytes += chunk.plain_bytes
        self.stored_bytes += chunk.stored_bytes

    def merge(self, res: StepResult) -> None:
        self.records += res.records
        self.tombstones += res.tombstones
        self.files += res.files
        self.plain_bytes += res.plain_bytes
        self.stored_bytes += res.stored_bytes


def _progress_order(plan: RunPlan) -> list[str]:
    """The objects to extract and the ones the probe found unchanged, in plan order (so the
    progress lines come out as they did when every object was read)."""
    wanted = set(plan.objects) | set(plan.unchanged)
    order = [n for n in plan.modes if n in wanted]
    return order + [n for n in plan.objects if n not in plan.modes]


def _filtered_batch_read(
    src: SalesforceSource, schema: ObjectSchema, fields: list[str], fk: str, ids: list[str]
) -> dict[str, Any]:
    """The REST read of a filter-required object's rows ``WHERE fk IN (ids)`` (deleted ones too)."""
    where = f"{fk} IN ({', '.join(repr(str(i)) for i in ids)})"
    return src.start_read(schema, fields, strategy="rest", where=where, include_deleted=True)


def _delta_where(cur: dict[str, Any]) -> str | None:
    """The WHERE of an object's read: ``SystemModstamp >= since`` for a delta, none for a full read
    (the plan-time first page and the extract must send the very same query)."""
    return f"SystemModstamp >= {cur['since']}" if cur.get("mode") == "delta" and cur.get("since") else None


def _unchanged(cp: Checkpoint, probe: list[dict[str, Any]] | None) -> bool:
    """True only when the change probe proves the object has nothing to read since the parent:
    a count-checked delta (not being reconciled) with a parent edge, whose whole delta (``probe``:
    the complete first page of its read) holds only records the parent read in that very version
    (same Id and SystemModstamp in its edge), and whose batched COUNT() equals the parent's count.
    Anything else is a change or a doubt, and a doubt is read: a late commit inside the overlap
    window or a deletion (a queryAll row with a new stamp) is a row outside the edge; a purge or a
    hard delete moves the count."""
    cur = cp.cursor
    edge = cur.get("parent_edge")
    if (
        probe is None
        or cur.get("mode") != "delta"
        or not cur.get("count_check")
        or cur.get("reconcile")
        or not isinstance(edge, dict)
        or not edge
        or len(probe) > len(edge)
        or cur.get("prev_records") is None
        or cur.get("sf_count") != cur.get("prev_records")
    ):
        return False
    return all(isinstance(r.get("Id"), str) and edge.get(r["Id"]) == r.get("SystemModstamp") for r in probe)


def _finished_unchanged(cp: Checkpoint) -> Checkpoint:
    """The checkpoint an unchanged object ends with, as if its delta had been read and found only
    rows the parent holds: DONE, no chunk, the parent's watermark and edge, and the parent's count
    (as ``live_count``, so finalize need not count)."""
    cur = cp.cursor
    final = {
        **cur,
        "phase": Phase.DONE.value,
        "read": None,
        "new_records": 0,
        "gone_records": 0,
        "edge": dict(cur["parent_edge"]),
        "live_count": int(cur["prev_records"]),
        "probe": "unchanged",
    }
    return replace(cp, state=ObjectState.DONE, cursor=final)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _safe_org_id(src: SalesforceSource) -> str:
    try:
        return src.org_id()
    except OrgVaultError:
        return ""
