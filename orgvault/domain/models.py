"""Domain values shared by services, ports and adapters (frozen dataclasses, StrEnum states).

These are what the catalog stores. Each adapter maps them to its own rows/items; the mapping
is written down in docs/format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class AuthMethod(StrEnum):
    JWT = "jwt"
    CLIENT_CREDENTIALS = "client-credentials"
    REFRESH_TOKEN = "refresh-token"
    PASSWORD = "password"


class RunKind(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class RunStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # stopped cleanly (API budget, time budget); resumable
    FAILED = "failed"  # failed; resumable from its checkpoints
    COMPLETED = "completed"  # its snapshot is committed


class ObjectState(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class ChunkKind(StrEnum):
    RECORDS = "records"  # a full read of an object (or of part of it)
    DELTA = "delta"  # records changed since the previous snapshot
    TOMBSTONES = "tombstones"  # ids deleted since the previous snapshot
    IDS = "ids"  # the full id list of an object, for reconciliation


@dataclass(frozen=True)
class OrgConnection:
    """A connected org. ``name`` is ours (e.g. ``acme-prod``); the key follows it, not the
    Salesforce org id, so it survives a sandbox refresh."""

    name: str
    instance_url: str
    auth_method: AuthMethod
    login_url: str = "https://login.salesforce.com"
    key_ref: str = ""  # KeyProvider key id/ARN for this org ("" = provider default)
    salesforce_org_id: str = ""
    api_version: str = "59.0"
    created_at: datetime | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """One backup run of one org. A run that completes commits the snapshot with the same id."""

    org: str
    run_id: str  # sortable: time-ordered, unique
    kind: RunKind
    status: RunStatus
    started_at: datetime
    parent_snapshot_id: str | None = None
    finished_at: datetime | None = None
    message: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """Where one object of one run stands. ``cursor`` is opaque JSON owned by the extractor
    (a Bulk job id and locator, a REST nextRecordsUrl, ...). ``next_seq`` is the sequence
    number the next chunk will get."""

    org: str
    run_id: str
    object_name: str
    state: ObjectState
    strategy: str = ""
    cursor: dict[str, Any] = field(default_factory=dict)
    next_seq: int = 0
    records: int = 0
    watermark: str | None = None  # max SystemModstamp seen, Salesforce datetime text
    fields_hash: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ChunkRecord:
    """A sealed chunk in the vault, as the catalog knows it."""

    org: str
    run_id: str
    object_name: str
    seq: int
    kind: ChunkKind
    key: str  # object-store key
    records: int
    plain_bytes: int
    stored_bytes: int
    sha256: str  # of the sealed bytes as stored
    first_id: str = ""
    last_id: str = ""


@dataclass(frozen=True)
class FileRecord:
    """A file body (ContentVersion.VersionData, Attachment.Body, Document.Body, ...) in the vault.

    ``source`` names where it came from (``ContentVersion/068.../VersionData``); ``content_id`` is
    the keyed hash of its bytes (HMAC with the org's content key), so equal bytes are stored once.
    ``source_stamp`` is the source record's SystemModstamp when the body was read."""

    org: str
    source: str
    content_id: str
    key: str
    size: int
    stored_bytes: int
    sha256: str  # of the sealed bytes as stored
    source_stamp: str = ""


@dataclass(frozen=True)
class SnapshotRecord:
    """A committed snapshot: visible only once its manifest is written and recorded.

    ``manifest_key``/``manifest_sha256`` point at the sealed manifest in the vault; the
    ``parent_id`` chain plus the hashes make a rolled-back or swapped manifest detectable."""

    org: str
    snapshot_id: str
    created_at: datetime
    kind: RunKind
    manifest_key: str
    manifest_sha256: str
    parent_id: str | None = None
    salesforce_org_id: str = ""
    objects: int = 0
    records: int = 0
    files: int = 0
    stored_bytes: int = 0


@dataclass(frozen=True)
class Lock:
    org: str
    owner: str
    acquired_at: datetime
    expires_at: datetime


class SecretDict(dict[str, str]):
    """Credentials as a plain ``dict[str, str]`` whose ``repr``/``str`` show the keys only, so a
    secret never lands in a log line or a traceback by accident."""

    def __repr__(self) -> str:
        return "SecretDict({" + ", ".join(f"{k!r}: '***'" for k in self) + "})"

    __str__ = __repr__
