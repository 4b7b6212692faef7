"""The restore job journal: what a restore intended, what it wrote, and the old id -> new id map.

Stored in the vault as sealed, write-once JSON entries under ``orgs/{org}/restores/{job_id}/``::

    {seq:08d}-{kind}.ovj     kind: job | intent | result | status

Contract:

- ``job`` (seq 0) records the request. Before every write batch an ``intent`` entry is written
  (object, operation, source ids, per-record fingerprints of the values sent); after it a ``result``
  entry (per record: source id, target id, success, errors). A batch with an intent and no result was
  interrupted (crash, dropped connection, exhausted budget): on resume it is *reconciled* — the
  records it may have created are looked for in the target by fingerprint — before anything is
  written again, so a resumed restore never duplicates a record.
- ``status`` entries mark the job paused (budget), failed or completed; the newest one wins.
- Entries are sealed like every other vault object (AES-256-GCM, a data key per entry, the context
  names org, job and sequence), so record values and ids in errors never sit in plain text.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from orgvault.domain import layout
from orgvault.domain.envelope import (
    Compression,
    EnvelopeError,
    EnvelopeHeader,
    Reason,
    check_context,
    new_nonce_prefix,
    open_envelope,
    seal,
)
from orgvault.errors import ObjectExists, PermanentError
from orgvault.ports import KeyProvider, ObjectStore

JOURNAL_EXT = ".ovj"


class JobStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # API budget exhausted or Salesforce unavailable: resumable
    FAILED = "failed"  # stopped on an error: resumable after fixing it
    COMPLETED = "completed"


class UnknownRestoreJob(PermanentError):
    """No restore job with that id exists for the org."""


def new_job_id(now: datetime | None = None) -> str:
    t = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"r{t}-{secrets.token_hex(3)}"


def journal_prefix(org: str, job_id: str) -> str:
    return f"{layout.org_prefix(org)}restores/{layout.check_run_id(job_id)}/"


def journal_context(org: str, job_id: str, seq: int) -> dict[str, str]:
    return {"org": org, "object": "$restore", "job": job_id, "seq": str(seq), "v": "1"}


@dataclass
class BatchState:
    seq: int
    object_name: str
    operation: str
    source_ids: list[str]
    fingerprints: list[str]
    results: list[dict[str, Any]] | None = None
    fields: list[str] = field(default_factory=list)


@dataclass
class JobState:
    """A job as rebuilt from its journal."""

    job_id: str
    request: dict[str, Any]
    status: JobStatus = JobStatus.RUNNING
    message: str = ""
    batches: list[BatchState] = field(default_factory=list)
    id_map: dict[str, str] = field(default_factory=dict)  # old id (15) -> new id
    done: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (op, old15) -> result
    next_seq: int = 1

    def pending(self) -> list[BatchState]:
        """Batches that were sent (or about to be) but whose result was never recorded."""
        return [b for b in self.batches if b.results is None]


class RestoreJournal:
    """Reads and appends one org's restore journals (thread-safe per instance)."""

    def __init__(self, store: ObjectStore, keys: KeyProvider, org: str, key_ref: str) -> None:
        self.store = store
        self.keys = keys
        self.org = org
        self.key_ref = key_ref
        self._lock = threading.Lock()

    # --- low level -----------------------------------------------------------------------------------

    def _key(self, job_id: str, seq: int, kind: str) -> str:
        return f"{journal_prefix(self.org, job_id)}{seq:08d}-{kind}{JOURNAL_EXT}"

    def append(self, job_id: str, seq: int, kind: str, body: Mapping[str, Any]) -> None:
        ctx = journal_context(self.org, job_id, seq)
        dk = self.keys.generate_data_key(self.key_ref, ctx)
        header = EnvelopeHeader(
            kind="restore-journal",
            key_ref=dk.key_ref,
            wrapped_key=dk.wrapped,
            nonce_prefix=new_nonce_prefix(),
            context=ctx,
            compression=Compression.NONE,
        )
        data = json.dumps({"kind": kind, **body}, default=str).encode()
        with contextlib.suppress(ObjectExists):  # a retried append of the same seq keeps the first
            self.store.put(self._key(job_id, seq, kind), seal(dk.plaintext, header, data))

    def _read(self, key: str, job_id: str, seq: int) -> dict[str, Any]:
        ctx = journal_context(self.org, job_id, seq)

        def resolve(h: EnvelopeHeader) -> bytes:
            if h.kind != "restore-journal":
                raise EnvelopeError(f"{key} is not a restore journal entry", reason=Reason.MISPLACED)
            check_context(h, ctx, what=key)
            return self.keys.decrypt_data_key(h.key_ref, h.wrapped_key, dict(ctx))

        _, plain = open_envelope(self.store.get(key), resolve, what=key)
        return json.loads(plain)

    def entries(self, job_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
        prefix = journal_prefix(self.org, job_id)
        for key in self.store.list(prefix):
            name = key[len(prefix) :]
            seq = int(name.split("-", 1)[0])
            yield seq, self._read(key, job_id, seq)

    # --- jobs ----------------------------------------------------------------------------------------

    def create(self, request: Mapping[str, Any], *, job_id: str | None = None) -> JobState:
        job_id = job_id or new_job_id()
        self.append(job_id, 0, "job", {"request": dict(request), "created_at": datetime.now(UTC).isoformat()})
        return JobState(job_id=job_id, request=dict(request))

    def load(self, job_id: str) -> JobState:
        state: JobState | None = None
        by_seq: dict[int, BatchState] = {}
        last = 0
        for seq, e in self.entries(job_id):
            last = max(last, seq)
            kind = e.get("kind")
            if kind == "job":
                state = JobState(job_id=job_id, request=e.get("request") or {})
            elif state is None:
                continue
            elif kind == "intent":
                b = BatchState(
                    seq,
                    e["object"],
                    e["operation"],
                    list(e["source_ids"]),
                    list(e.get("fingerprints") or []),
                    fields=list(e.get("fields") or []),
                )
                by_seq[seq] = b
                state.batches.append(b)
            elif kind == "result":
                done = by_seq.get(int(e["intent"]))
                if done is not None:
                    done.results = list(e["results"])
                    _apply_results(state, done)
            elif kind == "status":
                state.status = JobStatus(e["status"])
                state.message = e.get("message", "")
        if state is None:
            raise UnknownRestoreJob(
                f"no restore job {job_id!r} for {self.org}; see `orgvault restore --list {self.org}`"
            )
        state.next_seq = last + 1
        return state

    def list_jobs(self) -> list[str]:
        prefix = f"{layout.org_prefix(self.org)}restores/"
        jobs: list[str] = []
        for key in self.store.list(prefix):
            job = key[len(prefix) :].split("/", 1)[0]
            if not jobs or jobs[-1] != job:
                jobs.append(job)
        return jobs

    def intent(
        self,
        state: JobState,
        object_name: str,
        operation: str,
        source_ids: list[str],
        fingerprints: list[str],
        fields: list[str] | None = None,
    ) -> BatchState:
        with self._lock:
            seq = state.next_seq
            state.next_seq += 1
        b = BatchState(
            seq, object_name, operation, list(source_ids), list(fingerprints), fields=list(fields or [])
        )
        self.append(
            state.job_id,
            seq,
            "intent",
            {
                "object": object_name,
                "operation": operation,
                "source_ids": b.source_ids,
                "fingerprints": b.fingerprints,
                "fields": b.fields,
            },
        )
        state.batches.append(b)
        return b

    def result(self, state: JobState, batch: BatchState, results: list[dict[str, Any]]) -> None:
        with self._lock:
            seq = state.next_seq
            state.next_seq += 1
        self.append(state.job_id, seq, "result", {"intent": batch.seq, "results": results})
        batch.results = results
        _apply_results(state, batch)

    def status(self, state: JobState, status: JobStatus, message: str = "", **extra: Any) -> None:
        with self._lock:
            seq = state.next_seq
            state.next_seq += 1
        self.append(state.job_id, seq, "status", {"status": str(status), "message": message, **extra})
        state.status = status
        state.message = message


def _apply_results(state: JobState, batch: BatchState) -> None:
    for r in batch.results or []:
        old = str(r.get("source_id") or "")
        if not old:
            continue
        state.done[(batch.operation, old[:15])] = r
        if r.get("success") and r.get("id") and batch.operation in ("insert", "upsert", "upload"):
            state.id_map[old[:15]] = str(r["id"])
        for k_old, k_new in (r.get("also_mapped") or {}).items():  # e.g. ContentDocument of a new version
            state.id_map[str(k_old)[:15]] = str(k_new)
