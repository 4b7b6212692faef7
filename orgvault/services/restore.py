"""Restore backed-up records into the same org, another org or a sandbox.

Contracts (DESIGN.md "Restore"):

- Modes: ``revert-fields`` PATCHes, on records that still exist, only the updateable fields whose
  value differs from the backup (restricted to ``fields`` when given) — nothing else is touched.
  ``recreate-deleted`` inserts records that no longer exist (parents first; children of the selected
  records with ``with_children``; lookups remapped to the new ids, polymorphic ones by key prefix;
  self references and cycles in a second pass; files re-uploaded). ``upsert`` writes by an external
  id field.
- Fields that the TARGET's describe does not mark createable/updateable are never sent. Fields the
  target lacks make the restore refuse, listing them, unless ``skip_missing_fields``.
- Every restore is a job with a journal (:mod:`orgvault.services.restore_journal`): intent before each
  write batch, results after, the old id -> new id map rebuilt from them. Running it again with the
  same job id resumes: finished batches are skipped, interrupted ones reconciled (records they
  created are found by fingerprint), so nothing is created twice. ``ApiBudgetExhausted`` /
  ``SalesforceUnavailable`` pause the job (status ``paused``), which is then resumable.
- ``dry_run`` reads the backup and the target (describe, which records exist, current values) and
  returns exactly the writes it would make (object, operation, fields with values); it writes
  nothing, not even a journal.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from orgvault.domain import record_index as ri
from orgvault.domain.layout import FileRef
from orgvault.domain.manifest import Manifest
from orgvault.domain.restore_plan import (
    SYSTEM_FIELDS,
    IdMap,
    Operation,
    PreparedWrite,
    RestoreMode,
    fingerprint,
    missing_fields,
    plan_order,
    prepare_record,
    prepare_relink,
    revert_changes,
    writable_fields,
)
from orgvault.errors import (
    ApiBudgetExhausted,
    ConfigError,
    PermanentError,
    RetryableError,
    SalesforceUnavailable,
    WriteMaybeApplied,
)
from orgvault.ports import ObjectSchema, SalesforceTarget, WriteResult
from orgvault.services.browse import Snapshots
from orgvault.services.restore_filter import parse_where, predicate
from orgvault.services.restore_journal import BatchState, JobState, JobStatus, RestoreJournal

log = logging.getLogger(__name__)

Record = dict[str, Any]

# Objects that are never written directly: created as a side effect (a ContentDocument comes with its
# first ContentVersion) or not data.
NOT_WRITTEN = frozenset({"ContentDocument"})
FILE_BODY_FIELDS = {"ContentVersion": "VersionData", "Attachment": "Body", "Document": "Body"}


class TimeBudgetUsed(RetryableError):
    """A restore step used its time budget; the job continues in the next step (not a failure)."""


class RestoreRefused(PermanentError):
    """The restore cannot be done as asked (missing fields in the target, bad selection, ...)."""


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore. ``org`` names the backed-up connection; ``target`` another connection to
    write into (default: the same org)."""

    org: str
    object_name: str
    mode: RestoreMode = RestoreMode.RECREATE_DELETED
    snapshot_id: str | None = None
    at: str | None = None
    ids: tuple[str, ...] = ()
    where: str | None = None
    with_children: bool = False
    target: str | None = None
    external_id_field: str | None = None
    skip_missing_fields: bool = False
    fields: tuple[str, ...] = ()
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["mode"] = str(self.mode)
        d["ids"] = list(self.ids)
        d["fields"] = list(self.fields)
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> RestoreRequest:
        kw = dict(d)
        kw["mode"] = RestoreMode(kw.get("mode", RestoreMode.RECREATE_DELETED))
        kw["ids"] = tuple(kw.get("ids") or ())
        kw["fields"] = tuple(kw.get("fields") or ())
        return RestoreRequest(**kw)


@dataclass(frozen=True)
class PlannedWrite:
    """One write, as a dry run shows it. ``values`` show a reference to a record of this restore as
    ``<new id of OLDID>``."""

    object_name: str
    operation: str
    source_id: str
    target_id: str | None
    values: Mapping[str, Any]

    def line(self) -> str:
        vals = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        where = f" {self.target_id}" if self.target_id else ""
        return f"{self.operation.upper():7} {self.object_name}{where} (backup {self.source_id}): {vals}"


@dataclass
class RecordResult:
    object_name: str
    operation: str
    source_id: str
    success: bool
    target_id: str | None = None
    errors: tuple[str, ...] = ()
    note: str = ""


@dataclass
class RestoreReport:
    job_id: str
    status: JobStatus
    snapshot_id: str
    mode: RestoreMode
    dry_run: bool
    planned: list[PlannedWrite] = field(default_factory=list)
    results: list[RecordResult] = field(default_factory=list)
    skipped: list[RecordResult] = field(default_factory=list)
    message: str = ""
    api_calls: int = 0
    id_map: dict[str, str] = field(default_factory=dict)
    more: bool = False  # paused only because the step's time budget was used: call again

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = defaultdict(int)
        for r in self.results:
            c[f"{r.operation}:{'ok' if r.success else 'failed'}"] += 1
        for r in self.skipped:
            c[f"skipped:{r.note or 'other'}"] += 1
        if self.dry_run:
            for p in self.planned:
                c[f"planned:{p.operation}"] += 1
        return dict(sorted(c.items()))


class _Interrupted(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class RestoreService:
    """Plans and runs restores. ``target`` writes to the org restored into; ``snapshots`` reads the
    backup of ``request.org``. ``batch_size`` records go in one journalled write call (the writer
    splits it into 200-record collections or one Bulk job). ``hook`` is called with
    ``("before-write"|"after-write", batch)`` around every write (tests use it to crash)."""

    def __init__(
        self,
        snapshots: Snapshots,
        target: SalesforceTarget,
        journal: RestoreJournal | None,
        *,
        key_ref: str = "",
        batch_size: int = 10_000,
        hook: Callable[[str, BatchState], None] | None = None,
    ) -> None:
        self.snapshots = snapshots
        self.target = target
        self.journal = journal
        self.key_ref = key_ref
        self.batch_size = batch_size
        self.hook = hook
        self._schemas: dict[str, ObjectSchema] = {}
        self._prefixes: dict[str, str] | None = None
        self._exists: dict[str, set[str]] = defaultdict(set)
        self._absent: dict[str, set[str]] = defaultdict(set)
        self._backup_fields: dict[str, list[str]] = {}
        self._job_new_ids: list[str] = []
        self._claimed: set[str] = set()
        self._source_prefixes: dict[str, str] = {}
        self._deadline: float | None = None
        self._wrote = False  # target ids already claimed by reconciliation in this run

    # --- entry point -------------------------------------------------------------------------------

    def run(
        self,
        request: RestoreRequest | None = None,
        *,
        job_id: str | None = None,
        time_budget_s: float | None = None,
    ) -> RestoreReport:
        """Run (or, with ``job_id``, resume) a restore. Returns its report; the job is left
        ``paused`` (resumable) when the API budget runs out or Salesforce stays unavailable, or —
        with ``time_budget_s`` (a Lambda step) — once that many seconds have passed (at least one
        batch is written per call, so repeated calls always progress; ``report.more`` is then true)."""
        self._deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
        self._wrote = False
        state: JobState | None = None
        if job_id:
            if self.journal is None:
                raise ConfigError("resuming a restore needs its journal")
            state = self.journal.load(job_id)
            request = RestoreRequest.from_json(state.request)
        if request is None:
            raise ConfigError("a restore needs a request or a job id to resume")
        snap = self.snapshots.resolve(request.org, request.snapshot_id, request.at)
        manifest = self.snapshots.manifest(snap)
        self._source_prefixes = self.snapshots.key_prefixes(manifest)
        self._prefixes = None
        if state is None and not request.dry_run:
            if self.journal is None:
                raise ConfigError("a restore that writes needs a journal")
            pinned = RestoreRequest.from_json(
                {**request.to_json(), "snapshot_id": snap.snapshot_id, "at": None}
            )
            state = self.journal.create(pinned.to_json())
        report = RestoreReport(
            job_id=state.job_id if state else "dry-run",
            status=JobStatus.RUNNING,
            snapshot_id=snap.snapshot_id,
            mode=request.mode,
            dry_run=request.dry_run,
        )
        calls0 = getattr(self.target, "calls", 0)
        try:
            selection = self._select(manifest, request)
            self._check_fields(selection, request)
            ids = IdMap(state.id_map if state else {})
            if state is not None and state.pending():
                self._reconcile(state, selection, ids)
            if request.mode is RestoreMode.REVERT_FIELDS:
                self._revert(request, selection, state, report)
            elif request.mode is RestoreMode.RECREATE_DELETED:
                self._recreate(request, manifest, selection, state, ids, report)
            else:
                self._upsert(request, selection, state, ids, report)
            report.status = JobStatus.COMPLETED
            if state is not None and self.journal is not None:
                self.journal.status(state, JobStatus.COMPLETED, "done", counts=report.counts())
        except (_Interrupted, ApiBudgetExhausted, SalesforceUnavailable) as exc:
            cause = exc.cause if isinstance(exc, _Interrupted) else exc
            report.status = JobStatus.PAUSED
            report.more = isinstance(cause, TimeBudgetUsed)
            report.message = (
                f"{cause} — restore job {report.job_id} is paused; run it again with "
                f"`orgvault restore {request.org} --resume {report.job_id}` to continue"
            )
            if state is not None and self.journal is not None:
                self.journal.status(state, JobStatus.PAUSED, str(cause))
        finally:
            report.api_calls = getattr(self.target, "calls", 0) - calls0
        if state is not None:
            report.id_map = dict(state.id_map)
        return report

    # --- selection ---------------------------------------------------------------------------------

    def _select(self, manifest: Manifest, request: RestoreRequest) -> dict[str, dict[str, Record]]:
        """object -> {id15: record at the snapshot}: the roots, plus their children if asked."""
        org = request.org
        entry = self.snapshots.entry(manifest, request.object_name)
        test = predicate(parse_where(request.where))
        roots: dict[str, Record] = {}
        if request.ids:
            for rid in request.ids:
                lk = self.snapshots.lookup(org, self.key_ref, manifest, entry.name, rid)
                if lk.record is None:
                    raise RestoreRefused(
                        f"{entry.name} {rid} is not in snapshot {manifest.snapshot_id} ({lk.state})"
                    )
                if test(lk.record):
                    roots[ri.id15(lk.record["Id"])] = lk.record
        else:
            for r in self.snapshots.records(org, manifest, entry.name):
                if test(r):
                    roots[ri.id15(r["Id"])] = r
        selection: dict[str, dict[str, Record]] = {entry.name: roots}
        if request.with_children and roots:
            self._add_children(org, manifest, selection, entry.name, set(roots))
        return selection

    def _add_children(
        self,
        org: str,
        manifest: Manifest,
        selection: dict[str, dict[str, Record]],
        parent: str,
        ids: set[str],
    ) -> None:
        """Breadth-first: children of ``ids`` (of ``parent``) by the target describe's child
        relationships, then files: ContentDocumentLink -> the latest ContentVersion of its document."""
        frontier: list[tuple[str, set[str]]] = [(parent, ids)]
        seen_rel: set[tuple[str, str, str]] = set()
        while frontier:
            obj, parent_ids = frontier.pop(0)
            try:
                schema = self._schema(obj)
            except PermanentError:
                continue
            by_child: dict[str, set[str]] = defaultdict(set)
            for rel in schema.child_relationships:
                child, fname = rel.get("childSObject"), rel.get("field")
                if not child or not fname or child not in manifest.objects or child in NOT_WRITTEN:
                    continue
                if child == obj and fname.lower() == "masterrecordid":
                    continue
                if (obj, child, fname) in seen_rel:
                    continue
                seen_rel.add((obj, child, fname))
                by_child[child].add(fname)
            for child, fnames in sorted(by_child.items()):
                new: set[str] = set()
                bucket = selection.setdefault(child, {})
                for r in self.snapshots.records(org, manifest, child):
                    for fname in fnames:
                        v = r.get(fname)
                        if isinstance(v, str) and v[:15] in parent_ids:
                            k = ri.id15(r["Id"])
                            if k not in bucket:
                                bucket[k] = r
                                new.add(k)
                            break
                if child == "ContentDocumentLink" and new:
                    self._add_versions(
                        org, manifest, selection, {bucket[k].get("ContentDocumentId") for k in new}
                    )
                if new:
                    frontier.append((child, new))

    def _add_versions(
        self, org: str, manifest: Manifest, selection: dict[str, dict[str, Record]], doc_ids: set[Any]
    ) -> None:
        if "ContentVersion" not in manifest.objects:
            return
        docs = {d[:15] for d in doc_ids if isinstance(d, str)}
        bucket = selection.setdefault("ContentVersion", {})
        for r in self.snapshots.records(org, manifest, "ContentVersion"):
            doc = r.get("ContentDocumentId")
            if isinstance(doc, str) and doc[:15] in docs and r.get("IsLatest", True) is not False:
                bucket.setdefault(ri.id15(r["Id"]), r)

    # --- target facts ------------------------------------------------------------------------------

    def _schema(self, obj: str) -> ObjectSchema:
        if obj not in self._schemas:
            self._schemas[obj] = self.target.describe(obj)
        return self._schemas[obj]

    def _key_prefixes(self) -> dict[str, str]:
        """Key prefix -> object for the ids in the backup: the target's describeGlobal, overridden
        by what the snapshot itself shows (custom objects get different prefixes in each org)."""
        if self._prefixes is None:
            self._prefixes = {
                str(o["keyPrefix"]): str(o["name"]) for o in self.target.list_objects() if o.get("keyPrefix")
            }
            self._prefixes.update(self._source_prefixes)
        return self._prefixes

    def _check_fields(self, selection: Mapping[str, Mapping[str, Record]], request: RestoreRequest) -> None:
        problems: list[str] = []
        for obj, recs in selection.items():
            if not recs or obj in NOT_WRITTEN:
                continue
            try:
                schema = self._schema(obj)
            except PermanentError:
                problems.append(f"{obj} (the target has no such object)")
                continue
            names: dict[str, None] = {}
            for r in recs.values():
                for k, v in r.items():
                    if v is not None:
                        names[k] = None
            self._backup_fields[obj] = list(names)
            missing = missing_fields(names, schema)
            if request.fields:
                wanted = {f.lower() for f in request.fields}
                missing = [m for m in missing if m.lower() in wanted]
            problems.extend(f"{obj}.{m}" for m in missing)
        if problems and not request.skip_missing_fields:
            raise RestoreRefused(
                "the target org lacks fields the backup has values for: "
                + ", ".join(problems)
                + " — add them to the target, or pass --skip-missing-fields to restore without them"
            )

    def _prefetch_exists(self, refs: Iterable[tuple[str, str]]) -> None:
        """Learn, in as few queries as possible, which referenced records exist in the target."""
        by_obj: dict[str, set[str]] = defaultdict(set)
        for obj, rid in refs:
            k = rid[:15]
            if k not in self._exists[obj] and k not in self._absent[obj]:
                by_obj[obj].add(k)
        for obj, ids in by_obj.items():
            if obj in NOT_WRITTEN and obj != "ContentDocument":
                continue
            try:
                found = self.target.existing_ids(obj, sorted(ids))
            except PermanentError:
                found = set()
            self._exists[obj] |= found
            self._absent[obj] |= ids - found

    def _exists_in_target(self, obj: str, rid: str) -> bool:
        k = rid[:15]
        if k in self._exists[obj]:
            return True
        if k in self._absent[obj]:
            return False
        self._prefetch_exists([(obj, rid)])
        return k in self._exists[obj]

    def _ref_targets(self, obj: str, records: Iterable[Record]) -> list[tuple[str, str]]:
        schema = self._schema(obj)
        prefixes = self._key_prefixes()
        out = []
        for f in schema.fields:
            if f.type != "reference" or f.name.lower() in SYSTEM_FIELDS:
                continue
            for r in records:
                v = r.get(f.name)
                if isinstance(v, str) and len(v) >= 15:
                    target_obj = prefixes.get(v[:3]) or (
                        f.reference_to[0] if len(f.reference_to) == 1 else None
                    )
                    if target_obj:
                        out.append((target_obj, v))
        return out

    # --- writing -------------------------------------------------------------------------------------

    def _write_batch(
        self,
        state: JobState | None,
        report: RestoreReport,
        obj: str,
        operation: str,
        writes: list[PreparedWrite],
        send: Callable[[list[dict[str, Any]]], list[WriteResult]],
        *,
        payloads: list[dict[str, Any]] | None = None,
    ) -> list[WriteResult]:
        """Journal intent, write, journal results. Budget/availability errors become _Interrupted."""
        payloads = payloads if payloads is not None else [dict(w.values) for w in writes]
        assert state is not None and self.journal is not None
        if self._deadline is not None and time.monotonic() > self._deadline and self._wrote:
            raise _Interrupted(
                TimeBudgetUsed("the step's time budget is used; continue the job in the next step")
            )
        self._wrote = True
        fields = sorted({k for p in payloads for k in p if k != "Id"})
        batch = self.journal.intent(
            state,
            obj,
            operation,
            [w.source_id for w in writes],
            [fingerprint(obj, p) for p in payloads],
            fields,
        )
        if self.hook:
            self.hook("before-write", batch)
        try:
            try:
                results = send(payloads)
            except WriteMaybeApplied:
                results = self._recover(batch, payloads, send)
        except (ApiBudgetExhausted, SalesforceUnavailable) as exc:
            raise _Interrupted(exc) from exc
        self._claimed.update(r.id[:15] for r in results if r.success and r.id)
        if self.hook:
            self.hook("after-write", batch)
        self.journal.result(
            state,
            batch,
            [
                {"source_id": w.source_id, "id": res.id, "success": res.success, "errors": list(res.errors)}
                for w, res in zip(writes, results, strict=True)
            ],
        )
        for w, res in zip(writes, results, strict=True):
            report.results.append(
                RecordResult(obj, operation, w.source_id, res.success, res.id, res.errors, _note(w))
            )
        return results

    def _recover(
        self,
        batch: BatchState,
        payloads: list[dict[str, Any]],
        send: Callable[[list[dict[str, Any]]], list[WriteResult]],
    ) -> list[WriteResult]:
        """The connection dropped after the batch was sent. Updates are simply sent again (same
        values: idempotent); for inserts, the records the batch did create are found by fingerprint
        and only the others are sent again."""
        if batch.operation not in ("insert", "upload"):
            return send(payloads)
        claimed: set[str] = set(self._claimed)
        self._job_new_ids = sorted(self._claimed)
        me = ""
        with contextlib.suppress(PermanentError):
            me = self.target.current_user_id()
        found = self._find_created(batch, me, claimed)
        results: list[WriteResult | None] = []
        retry: list[int] = []
        for i, fp in enumerate(batch.fingerprints):
            new = found.get(fp)
            if new:
                found[fp] = ""
                self._claimed.add(new[:15])
                results.append(WriteResult(True, new, created=True))
            else:
                results.append(None)
                retry.append(i)
        if retry:
            again = send([payloads[i] for i in retry])
            for i, res in zip(retry, again, strict=True):
                results[i] = res
        return [r if r is not None else WriteResult(False, None, errors=("NO_RESULT",)) for r in results]

    def _batches(self, items: list[Any]) -> Iterable[list[Any]]:
        for i in range(0, len(items), self.batch_size):
            yield items[i : i + self.batch_size]

    # --- revert-fields --------------------------------------------------------------------------------

    def _revert(
        self,
        request: RestoreRequest,
        selection: Mapping[str, Mapping[str, Record]],
        state: JobState | None,
        report: RestoreReport,
    ) -> None:
        for obj, recs in selection.items():
            if not recs or obj in NOT_WRITTEN:
                continue
            schema = self._schema(obj)
            upd = writable_fields(schema, Operation.UPDATE)
            names = sorted({k for r in recs.values() for k in r if k.lower() in upd})
            if request.fields:
                wanted = {f.lower() for f in request.fields}
                names = [n for n in names if n.lower() in wanted]
            if not names:
                continue
            current = self._current(obj, names, list(recs))
            updates: list[PreparedWrite] = []
            for k, rec in recs.items():
                if state is not None and ("update", k) in state.done:
                    continue
                cur = current.get(k)
                if cur is None:
                    report.skipped.append(
                        RecordResult(obj, "update", rec["Id"], False, note="deleted-in-target")
                    )
                    continue
                values, refused = revert_changes(rec, cur, schema, fields=names)
                if not values:
                    continue
                updates.append(
                    PreparedWrite(
                        obj, Operation.UPDATE, rec["Id"], {"Id": cur["Id"], **values}, dropped=tuple(refused)
                    )
                )
            self._emit(request, state, report, obj, "update", updates, partial(self.target.update, obj))

    def _current(self, obj: str, names: list[str], ids: list[str]) -> dict[str, Record]:
        """Current values of ``names`` for ``ids`` in the target: by id lists for a few records,
        by one paged read of the object for many (fewer API calls)."""
        cols = ", ".join(["Id", *[n for n in names if n != "Id"]])
        out: dict[str, Record] = {}
        if len(ids) > 1000:
            wanted = {i[:15] for i in ids}
            for r in self.target.query(f"SELECT {cols} FROM {obj}"):
                if str(r["Id"])[:15] in wanted:
                    out[ri.id15(r["Id"])] = r
            return out
        for i in range(0, len(ids), 300):
            in_list = ",".join(f"'{x}'" for x in ids[i : i + 300])
            for r in self.target.query(f"SELECT {cols} FROM {obj} WHERE Id IN ({in_list})"):
                out[ri.id15(r["Id"])] = r
        return out

    def _emit(
        self,
        request: RestoreRequest,
        state: JobState | None,
        report: RestoreReport,
        obj: str,
        operation: str,
        writes: list[PreparedWrite],
        send: Callable[[list[dict[str, Any]]], list[WriteResult]],
        show: Callable[[PreparedWrite], PlannedWrite] | None = None,
    ) -> list[tuple[PreparedWrite, WriteResult]]:
        if request.dry_run:
            for w in writes:
                report.planned.append(
                    show(w)
                    if show
                    else PlannedWrite(
                        obj,
                        operation,
                        w.source_id,
                        str(w.values.get("Id") or "") or None,
                        {k: v for k, v in w.values.items() if k != "Id"},
                    )
                )
            return []
        out: list[tuple[PreparedWrite, WriteResult]] = []
        for part in self._batches(writes):
            results = self._write_batch(state, report, obj, operation, part, send)
            out.extend(zip(part, results, strict=True))
        return out

    # --- recreate-deleted ----------------------------------------------------------------------------

    def _recreate(
        self,
        request: RestoreRequest,
        manifest: Manifest,
        selection: Mapping[str, Mapping[str, Record]],
        state: JobState | None,
        ids: IdMap,
        report: RestoreReport,
    ) -> None:
        # Which selected records still exist (same org): they are kept, and lookups to them stay.
        for obj, recs in selection.items():
            if obj in NOT_WRITTEN or not recs:
                continue
            self._prefetch_exists((obj, rid) for rid in recs)
        todo: dict[str, list[Record]] = {}
        earlier: dict[str, list[Record]] = defaultdict(list)
        for obj, recs in selection.items():
            if obj in NOT_WRITTEN:
                continue
            pending = []
            for k, r in recs.items():
                if k in ids:
                    earlier[obj].append(r)  # inserted by an earlier run of this job
                    continue
                if self._exists_in_target(obj, r["Id"]) and not self._orphan_version(obj, r):
                    report.skipped.append(RecordResult(obj, "insert", r["Id"], True, r["Id"], note="exists"))
                    continue
                pending.append(r)
            if pending:
                todo[obj] = pending
        objects = [o for o in todo if self._schema(o).createable]
        for o in todo:
            if o not in objects:
                for r in todo[o]:
                    report.skipped.append(
                        RecordResult(o, "insert", r["Id"], False, note="object-not-createable")
                    )
        # one plan over everything the job inserts (earlier runs included): the same deferred fields
        planned = sorted(set(objects) | {o for o in earlier if self._schema(o).createable})
        plan = plan_order({o: self._schema(o) for o in planned}, planned)
        order = [o for o in plan.order if o in todo and o in objects]
        if "ContentDocumentLink" in order and "ContentVersion" in order:
            # a link needs the document its version upload creates (ContentDocument is not written)
            order.remove("ContentDocumentLink")
            order.insert(order.index("ContentVersion") + 1, "ContentDocumentLink")
        prefixes = self._key_prefixes()
        relink: list[tuple[str, PreparedWrite]] = []
        # only references to records this job inserts need a second pass; others exist already
        inserting = {ri.id15(r["Id"]) for batch in todo.values() for r in batch}
        inserting |= {ri.id15(r["Id"]) for batch in earlier.values() for r in batch}
        for obj in order:
            to_insert = todo[obj]
            self._prefetch_exists(self._ref_targets(obj, to_insert))
            deferred = plan.deferred_fields(obj)
            if obj in FILE_BODY_FIELDS:
                self._recreate_files(request, state, report, obj, to_insert, ids, prefixes, deferred, relink)
                continue
            writes = [
                prepare_record(
                    r,
                    object_name=obj,
                    target=self._schema(obj),
                    operation=Operation.INSERT,
                    id_map=ids,
                    key_prefixes=prefixes,
                    deferred_fields=[f for f in deferred if str(r.get(f) or "")[:15] in inserting],
                    exists_in_target=self._exists_in_target,
                    skip_fields=self._skip(request, obj),
                )
                for r in to_insert
            ]
            if obj == "ContentDocumentLink":
                writes = self._new_links_only(writes, report)
            done = self._emit(
                request,
                state,
                report,
                obj,
                "insert",
                writes,
                partial(self.target.insert, obj),
                show=lambda w: _show(w, ids),
            )
            for w, res in done:
                if res.success and res.id:
                    ids.add(w.source_id, res.id)
            if request.dry_run:
                for w in writes:  # later objects see these as "will exist"
                    ids.add(w.source_id, f"<new id of {w.source_id}>")
            relink.extend((obj, w) for w in writes if w.deferred)
        # records inserted by an earlier run of this job whose second pass may not have happened
        for obj, recs_before in earlier.items():
            deferred = plan.deferred_fields(obj)
            if not deferred:
                continue
            for r in recs_before:
                fields = [f for f in deferred if str(r.get(f) or "")[:15] in inserting]
                if fields and not (state is not None and ("relink", ri.id15(r["Id"])) in state.done):
                    relink.append(
                        (
                            obj,
                            PreparedWrite(
                                obj, Operation.INSERT, r["Id"], {}, deferred={f: r[f] for f in fields}
                            ),
                        )
                    )
        # pass 2: self references and cycle breakers
        by_obj: dict[str, list[PreparedWrite]] = defaultdict(list)
        for obj, w in relink:
            new_id = ids.get(w.source_id)
            if not new_id:
                continue
            if state is not None and ("relink", w.source_id[:15]) in state.done:
                continue
            r2 = prepare_relink(
                w,
                new_id=new_id,
                id_map=ids,
                key_prefixes=prefixes,
                exists_in_target=self._exists_in_target,
                target=self._schema(obj),
            )
            if r2 is not None:
                by_obj[obj].append(r2)
        for obj, writes in by_obj.items():
            self._emit(request, state, report, obj, "relink", writes, partial(self.target.update, obj))

    def _orphan_version(self, obj: str, r: Record) -> bool:
        """A ContentVersion whose document was deleted is gone for users (its row may linger)."""
        doc = r.get("ContentDocumentId")
        return (
            obj == "ContentVersion"
            and isinstance(doc, str)
            and not self._exists_in_target("ContentDocument", doc)
        )

    def _skip(self, request: RestoreRequest, obj: str) -> list[str]:
        """Backed-up fields the target lacks, dropped when ``skip_missing_fields`` (else the restore
        was refused earlier)."""
        if not request.skip_missing_fields:
            return []
        schema = self._schema(obj)
        return [f for f in self._backup_fields.get(obj, []) if schema.field(f) is None]

    def _new_links_only(self, writes: list[PreparedWrite], report: RestoreReport) -> list[PreparedWrite]:
        """Drop ContentDocumentLinks that already exist (uploading a version with a
        FirstPublishLocationId links it already)."""
        docs = sorted(
            {str(w.values.get("ContentDocumentId")) for w in writes if w.values.get("ContentDocumentId")}
        )
        existing: set[tuple[str, str]] = set()
        for i in range(0, len(docs), 200):
            if docs[i : i + 200] and all(not d.startswith("<") for d in docs[i : i + 200]):
                in_list = ",".join(f"'{d}'" for d in docs[i : i + 200])
                for r in self.target.query(
                    f"SELECT Id, LinkedEntityId, ContentDocumentId FROM ContentDocumentLink "
                    f"WHERE ContentDocumentId IN ({in_list})"
                ):
                    existing.add((str(r["LinkedEntityId"])[:15], str(r["ContentDocumentId"])[:15]))
        out = []
        for w in writes:
            key = (str(w.values.get("LinkedEntityId"))[:15], str(w.values.get("ContentDocumentId"))[:15])
            if key in existing:
                report.skipped.append(
                    RecordResult("ContentDocumentLink", "insert", w.source_id, True, note="link-exists")
                )
            else:
                out.append(w)
        return out

    def _recreate_files(
        self,
        request: RestoreRequest,
        state: JobState | None,
        report: RestoreReport,
        obj: str,
        recs: list[Record],
        ids: IdMap,
        prefixes: Mapping[str, str],
        deferred: tuple[str, ...],
        relink: list[tuple[str, PreparedWrite]],
    ) -> None:
        body_field = FILE_BODY_FIELDS[obj]
        schema = self._schema(obj)
        for r in recs:
            w = prepare_record(
                r,
                object_name=obj,
                target=schema,
                operation=Operation.INSERT,
                id_map=ids,
                key_prefixes=prefixes,
                deferred_fields=deferred,
                exists_in_target=self._exists_in_target,
                skip_fields=self._skip(request, obj),
            )
            values = dict(w.values)
            if obj == "ContentVersion":
                # a deleted document is re-created by its first version; never attach to the old one
                old_doc = values.pop("ContentDocumentId", None)
                if old_doc and not str(old_doc).startswith("<"):
                    values["ContentDocumentId"] = old_doc  # still exists in the target: a new version
                old_doc = r.get("ContentDocumentId")
            else:
                old_doc = None
            fref = FileRef.from_value(r.get(body_field))
            if request.dry_run:
                shown = {**values, body_field: f"<{fref.size} bytes from the vault>" if fref else None}
                report.planned.append(PlannedWrite(obj, "upload", w.source_id, None, shown))
                ids.add(w.source_id, f"<new id of {w.source_id}>")
                if old_doc:
                    ids.add(str(old_doc), f"<new id of {old_doc}>")
                continue
            if fref is None:
                report.results.append(
                    RecordResult(
                        obj, "upload", w.source_id, False, errors=("the backup holds no body for this file",)
                    )
                )
                continue
            data = b"".join(
                self.snapshots.vault.read_file_stream(request.org, fref.content_id, expected_size=fref.size)
            )
            unresolved = {
                k: v
                for k, v in w.unresolved.items()
                if not (obj == "ContentVersion" and k == "ContentDocumentId")
            }
            w2 = PreparedWrite(obj, Operation.INSERT, w.source_id, values, w.deferred, unresolved, w.dropped)
            extra: dict[str, str] = {}

            def send(payloads: list[dict[str, Any]], _d: bytes = data, _o: str = obj) -> list[WriteResult]:
                res = self.target.upload_file(_o, body_field, payloads[0], _d)
                return [res]

            results = self._write_batch(state, report, obj, "upload", [w2], send)
            res = results[0]
            if res.success and res.id:
                ids.add(w.source_id, res.id)
                if old_doc:
                    rows = self.target.query(
                        f"SELECT Id, ContentDocumentId FROM ContentVersion WHERE Id = '{res.id}'"
                    )
                    if rows and rows[0].get("ContentDocumentId"):
                        extra[str(old_doc)] = str(rows[0]["ContentDocumentId"])
                        ids.add(str(old_doc), str(rows[0]["ContentDocumentId"]))
                        self._exists["ContentDocument"].add(str(rows[0]["ContentDocumentId"])[:15])
                if extra and state is not None and self.journal is not None:
                    # persist the document mapping with the version (resume needs it)
                    b = self.journal.intent(state, obj, "map", [w.source_id], [])
                    self.journal.result(
                        state,
                        b,
                        [{"source_id": w.source_id, "id": res.id, "success": True, "also_mapped": extra}],
                    )
            if w.deferred:
                relink.append((obj, w))

    # --- upsert ------------------------------------------------------------------------------------

    def _upsert(
        self,
        request: RestoreRequest,
        selection: Mapping[str, Mapping[str, Record]],
        state: JobState | None,
        ids: IdMap,
        report: RestoreReport,
    ) -> None:
        ext = request.external_id_field
        if not ext:
            raise RestoreRefused(
                "--mode upsert needs --external-id FIELD (an external id field of the object)"
            )
        objects = [o for o, recs in selection.items() if recs and o not in NOT_WRITTEN]
        plan = plan_order({o: self._schema(o) for o in objects}, objects)
        prefixes = self._key_prefixes()
        for obj in plan.order:
            schema = self._schema(obj)
            f = schema.field(ext)
            if f is None or not f.external_id:
                raise RestoreRefused(f"{obj}.{ext} is not an external id field in the target")
            recs = list(selection[obj].values())
            self._prefetch_exists(self._ref_targets(obj, recs))
            writes = []
            for r in recs:
                if state is not None and ("upsert", ri.id15(r["Id"])) in state.done:
                    continue
                if r.get(f.name) in (None, ""):
                    report.skipped.append(RecordResult(obj, "upsert", r["Id"], False, note=f"no-{f.name}"))
                    continue
                writes.append(
                    prepare_record(
                        r,
                        object_name=obj,
                        target=schema,
                        operation=Operation.UPSERT,
                        id_map=ids,
                        key_prefixes=prefixes,
                        deferred_fields=plan.deferred_fields(obj),
                        exists_in_target=self._exists_in_target,
                        skip_fields=self._skip(request, obj),
                    )
                )
            done = self._emit(
                request,
                state,
                report,
                obj,
                "upsert",
                writes,
                partial(self.target.upsert, obj, f.name),
                show=lambda w: _show(w, ids),
            )
            for w, res in done:
                if res.success and res.id:
                    ids.add(w.source_id, res.id)

    # --- resume ------------------------------------------------------------------------------------

    def _reconcile(self, state: JobState, selection: Mapping[str, Mapping[str, Record]], ids: IdMap) -> None:
        """For each interrupted batch: find what it wrote. Inserts/uploads are looked for by
        fingerprint among recent records of the object; updates are simply sent again (idempotent)."""
        assert self.journal is not None
        claimed = {v[:15] for v in state.id_map.values()}
        me = ""
        try:
            me = self.target.current_user_id()
        except PermanentError:
            me = ""
        self._job_new_ids = list(state.id_map.values())
        for batch in state.pending():
            if batch.operation not in ("insert", "upload", "upsert"):
                self.journal.result(state, batch, [])  # close it: updates are re-planned and idempotent
                continue
            if batch.operation == "upsert":
                self.journal.result(state, batch, [])  # upsert by external id is idempotent: just redo
                continue
            found = self._find_created(batch, me, claimed)
            results: list[dict[str, Any]] = []
            for sid, fp in zip(batch.source_ids, batch.fingerprints, strict=False):
                new = found.get(fp)
                if new:
                    found[fp] = ""
                    claimed.add(new[:15])
                    results.append(
                        {"source_id": sid, "id": new, "success": True, "errors": [], "reconciled": True}
                    )
            if batch.object_name == "ContentVersion":
                for r in results:
                    old_doc = (
                        (selection.get("ContentVersion") or {})
                        .get(r["source_id"][:15], {})
                        .get("ContentDocumentId")
                    )
                    rows = self.target.query(
                        f"SELECT Id, ContentDocumentId FROM ContentVersion WHERE Id = '{r['id']}'"
                    )
                    if old_doc and rows and rows[0].get("ContentDocumentId"):
                        r["also_mapped"] = {str(old_doc): str(rows[0]["ContentDocumentId"])}
            self.journal.result(state, batch, results)
            for r in results:
                ids.add(r["source_id"], r["id"])
                for k_old, k_new in (r.get("also_mapped") or {}).items():
                    ids.add(k_old, k_new)

    def _find_created(self, batch: BatchState, me: str, claimed: set[str]) -> dict[str, str]:
        """fingerprint -> id of an unclaimed target record with exactly the values the batch sent."""
        obj = batch.object_name
        schema = self._schema(obj)
        names = [
            n for n in batch.fields if schema.field(n) is not None and n not in FILE_BODY_FIELDS.values()
        ]
        cols = ", ".join(["Id", *names])
        cond = []
        if me and schema.field("CreatedById") is not None:
            cond.append(f"CreatedById = '{me}'")
        if obj == "ContentDocumentLink":  # Salesforce insists on a filter by parent or document
            parents = sorted({v[:15] for v in self._job_new_ids})
            if not parents:
                return {}
            cond.append(f"LinkedEntityId IN ({','.join(repr(p) for p in parents[:500])})")
        where = f" WHERE {' AND '.join(cond)}" if cond else ""
        order = " ORDER BY SystemModstamp DESC" if schema.field("SystemModstamp") is not None else ""
        rows = self.target.query(f"SELECT {cols} FROM {obj}{where}{order} LIMIT 10000")
        want = set(batch.fingerprints)
        out: dict[str, str] = {}
        for r in rows:
            if str(r["Id"])[:15] in claimed:
                continue
            fp = fingerprint(obj, {k: r.get(k) for k in names})
            if fp in want and fp not in out:
                out[fp] = str(r["Id"])
        return out


def _note(w: PreparedWrite) -> str:
    parts = []
    if w.unresolved:
        parts.append("unresolved lookups nulled: " + ", ".join(sorted(w.unresolved)))
    return "; ".join(parts)


def _show(w: PreparedWrite, ids: IdMap) -> PlannedWrite:
    return PlannedWrite(w.object_name, str(w.operation), w.source_id, None, dict(w.values))
