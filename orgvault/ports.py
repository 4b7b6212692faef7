"""Ports: the narrow interfaces the services need from the outside world.

Adapters in ``orgvault.adapters`` implement them (local: filesystem, SQLite, key file; AWS: S3,
DynamoDB, KMS, Secrets Manager). Every adapter of a port passes the same contract suite in
``tests/contract``. Services depend on these Protocols only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from orgvault.domain.models import (
    Checkpoint,
    ChunkRecord,
    FileRecord,
    Lock,
    OrgConnection,
    Run,
    SnapshotRecord,
)


class ObjectStore(Protocol):
    """Write-once blob storage addressed by ``/``-separated keys.

    ``put`` of a key that already holds the *same* bytes is a no-op (so retries are safe); of a
    key holding different bytes raises ``ObjectExists``. Nothing is modified in place.
    Errors: ``ObjectNotFound``, ``ObjectExists``, ``VaultUnavailable`` (retryable).
    """

    def put(self, key: str, data: bytes) -> None: ...

    def put_stream(self, key: str, parts: Iterable[bytes]) -> int:
        """Write-once from an iterable of byte strings without holding them all; returns size."""
        ...

    def get(self, key: str) -> bytes: ...

    def get_stream(self, key: str, *, part_size: int = 8 * 1024 * 1024) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, in lexicographic order."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object. Only for crypto-shredding and garbage collection of orphans that no
        manifest references; never for data a snapshot points at. Missing key: no error."""
        ...


@dataclass(frozen=True)
class DataKey:
    plaintext: bytes  # 32 bytes; never logged, never stored
    wrapped: bytes  # opaque blob, stored beside the ciphertext
    key_ref: str  # which master key wrapped it (KMS key ARN, local key id)


class KeyProvider(Protocol):
    """Per-org master keys that wrap per-chunk data keys.

    The ``context`` (encryption context) must be presented unchanged to unwrap: a wrapped key
    copied to another org/object/chunk fails with ``KeyUnavailable``. Errors say what to fix.
    """

    def create_org_key(self, org: str) -> str:
        """Create (or return the existing) master key for a connection; returns its ``key_ref``.
        Idempotent per org name."""
        ...

    def generate_data_key(self, key_ref: str, context: Mapping[str, str]) -> DataKey: ...

    def decrypt_data_key(self, key_ref: str, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...


class SecretStore(Protocol):
    """Salesforce credentials per org (JWT private key, client secret, refresh token, password).

    Values never appear in logs, errors or repr. ``get`` of an unknown org raises
    ``CredentialsNotFound``."""

    def put(self, org: str, secret: Mapping[str, str]) -> None: ...

    def get(self, org: str) -> dict[str, str]: ...

    def delete(self, org: str) -> None: ...


class Catalog(Protocol):
    """Metadata about orgs, runs, checkpoints, chunks, files and snapshots.

    Writes are idempotent where noted so that a resumed step can repeat them. The snapshot commit
    and the run lock are conditional (compare-and-set). Lists are returned fully paginated.
    """

    # orgs
    def put_org(self, org: OrgConnection) -> None: ...

    def get_org(self, name: str) -> OrgConnection:
        """Raises ``UnknownOrg``."""
        ...

    def list_orgs(self) -> list[OrgConnection]: ...

    def delete_org(self, name: str) -> None: ...

    # run lock: at most one run per org
    def acquire_lock(
        self, org: str, owner: str, *, now: datetime, ttl_seconds: int, force: bool = False
    ) -> Lock:
        """Take the org's lock for ``owner``. Succeeds when free, expired, already held by
        ``owner`` (refreshes it) or ``force``; else raises ``RunInProgress`` naming the holder."""
        ...

    def release_lock(self, org: str, owner: str) -> None:
        """Release if held by ``owner``; otherwise do nothing."""
        ...

    def get_lock(self, org: str) -> Lock | None: ...

    # runs
    def put_run(self, run: Run) -> None:
        """Insert or replace by (org, run_id)."""
        ...

    def get_run(self, org: str, run_id: str) -> Run: ...

    def list_runs(self, org: str) -> list[Run]:
        """Oldest first."""
        ...

    # checkpoints
    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Insert or replace by (org, run_id, object_name)."""
        ...

    def list_checkpoints(self, org: str, run_id: str) -> list[Checkpoint]: ...

    # chunks
    def record_chunk(self, chunk: ChunkRecord, checkpoint: Checkpoint) -> None:
        """Atomically add the chunk and move the object's checkpoint past it. Repeating the same
        call is a no-op; a different chunk with the same (org, run_id, object, seq) raises
        ``IntegrityError``."""
        ...

    def list_chunks(self, org: str, run_id: str, object_name: str | None = None) -> list[ChunkRecord]:
        """Ordered by object name, then seq."""
        ...

    # files (content-addressed bodies)
    def put_file(self, file: FileRecord) -> None:
        """Insert or replace by (org, source)."""
        ...

    def get_file(self, org: str, source: str) -> FileRecord | None: ...

    def list_files(self, org: str) -> list[FileRecord]: ...

    # snapshots
    def commit_snapshot(self, snapshot: SnapshotRecord, *, expected_head: str | None) -> None:
        """Make ``snapshot`` the org's head iff the current head id equals ``expected_head``
        (``None`` = no snapshot yet); else ``ConcurrentCommit``. Idempotent for the same record."""
        ...

    def get_snapshot(self, org: str, snapshot_id: str) -> SnapshotRecord:
        """Raises ``SnapshotNotFound``."""
        ...

    def head_snapshot(self, org: str) -> SnapshotRecord | None: ...

    def list_snapshots(self, org: str) -> list[SnapshotRecord]:
        """Oldest first."""
        ...


Json = dict[str, Any]


# --- Salesforce -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiUsage:
    """The last ``Sforce-Limit-Info: api-usage=USED/TOTAL`` seen."""

    used: int
    total: int


@dataclass(frozen=True)
class FieldInfo:
    """One field from describe, reduced to what backup and restore need."""

    name: str
    type: str  # Salesforce field type: id, string, reference, datetime, base64, address, ...
    createable: bool = False
    updateable: bool = False
    calculated: bool = False
    nillable: bool = True
    external_id: bool = False
    compound_field_name: str | None = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None


@dataclass(frozen=True)
class ObjectSchema:
    name: str
    fields: tuple[FieldInfo, ...]
    key_prefix: str | None = None
    createable: bool = False
    updateable: bool = False
    child_relationships: tuple[dict[str, Any], ...] = ()

    def field(self, name: str) -> FieldInfo | None:
        return next((f for f in self.fields if f.name.lower() == name.lower()), None)


@dataclass(frozen=True)
class RecordPage:
    """A page of records, normalized to canonical values (see ``orgvault.domain.records``):
    no ``attributes``, compound fields absent (their components present), datetimes in
    Salesforce REST text form. ``cursor`` continues the read (JSON-serializable, safe to store
    in a checkpoint and to replay after a crash); ``None`` means the read is complete.
    ``wait_seconds`` > 0 with no records means "not ready yet, ask again later" (Bulk job still
    running) and ``cursor`` is the one to ask with."""

    records: list[dict[str, Any]]
    cursor: dict[str, Any] | None
    wait_seconds: float = 0.0


class SalesforceSource(Protocol):
    """Read access to one Salesforce org, on simple-salesforce. Translates errors into the
    orgvault tree (``SalesforceUnavailable``, ``ApiBudgetExhausted``, ``BulkNotSupported``,
    ``QueryLocatorExpired``, ``SalesforceAuthError``, ``SalesforceRequestError``), re-logs in on
    an expired session, and records API usage from every response."""

    def org_id(self) -> str: ...

    def list_objects(self) -> list[dict[str, Any]]:
        """describeGlobal ``sobjects`` entries, as Salesforce returns them."""
        ...

    def describe(self, object_name: str) -> ObjectSchema: ...

    def start_read(
        self,
        schema: ObjectSchema,
        fields: list[str],
        *,
        strategy: str,  # "bulk" or "rest"
        where: str | None = None,
        include_deleted: bool = True,
    ) -> dict[str, Any]:
        """Begin reading ``fields`` of ``schema`` (queryAll when ``include_deleted``); returns the
        first cursor. ``strategy="bulk"`` may raise ``BulkNotSupported``: fall back to REST."""
        ...

    def read_page(self, cursor: dict[str, Any]) -> RecordPage: ...

    def download(self, object_name: str, record_id: str, field: str) -> Iterator[bytes]:
        """Stream a base64 field's body (ContentVersion.VersionData, Attachment.Body, ...)."""
        ...

    def api_usage(self) -> ApiUsage | None: ...


# --- Salesforce writes (restore) ----------------------------------------------------------------


@dataclass(frozen=True)
class WriteResult:
    """The outcome of writing one record, in request order. ``id`` is the record's id in the target
    (the new id for an insert); ``errors`` are Salesforce messages prefixed by their errorCode."""

    success: bool
    id: str | None = None
    created: bool = False
    errors: tuple[str, ...] = ()


class SalesforceTarget(Protocol):
    """Write access to one Salesforce org for restores, on simple-salesforce (same login, retry,
    re-login, budget and error translation as ``SalesforceSource``).

    Batch methods take any number of records and split them (sObject Collections: at most 200 a
    call, ``allOrNone`` false) or use Bulk API 2.0 ingest above ``bulk_threshold``; they return one
    ``WriteResult`` per record in input order. A record-level failure is a result, not an
    exception; ``ApiBudgetExhausted`` / ``SalesforceUnavailable`` abort the call (the caller's job
    journal knows which batches completed)."""

    def org_id(self) -> str: ...

    def list_objects(self) -> list[dict[str, Any]]: ...

    def describe(self, object_name: str) -> ObjectSchema: ...

    def insert(self, object_name: str, records: list[dict[str, Any]]) -> list[WriteResult]: ...

    def update(self, object_name: str, records: list[dict[str, Any]]) -> list[WriteResult]:
        """Each record carries its ``Id``; only the other fields given are changed."""
        ...

    def upsert(
        self, object_name: str, external_id_field: str, records: list[dict[str, Any]]
    ) -> list[WriteResult]: ...

    def query(self, soql: str) -> list[dict[str, Any]]:
        """All rows of a (small) query, canonical values (no ``attributes``)."""
        ...

    def current_user_id(self) -> str:
        """The id of the user the restore writes as (``CreatedById`` of what it creates)."""
        ...

    def existing_ids(self, object_name: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` exist (not deleted) in the target; 15-character forms."""
        ...

    def upload_file(
        self, object_name: str, body_field: str, values: dict[str, Any], data: bytes
    ) -> WriteResult:
        """Insert a record with a binary body (ContentVersion.VersionData, Attachment.Body,
        Document.Body) by multipart upload. A body over the object's limit (2 GB ContentVersion,
        500 MB others) is refused with ``SalesforceRequestError`` before anything is sent."""
        ...

    def api_usage(self) -> ApiUsage | None: ...
