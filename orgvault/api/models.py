"""Request and response bodies of the API (pydantic v2; the OpenAPI document is generated from them).

Lists are paged: ``limit`` (1..1000) and an opaque ``next_token`` (absent on the last page).
Request models forbid unknown fields, so a misspelt option is a 422, not silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SF_ID = r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$"
OBJECT = r"^[A-Za-z][A-Za-z0-9_]{0,79}$"
RUN_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$"
FIELD = r"^[A-Za-z][A-Za-z0-9_.]{0,79}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    error: str
    message: str
    status: int


class Page(BaseModel):
    next_token: str | None = None


# --- orgs ----------------------------------------------------------------------------------------


class OrgOut(BaseModel):
    name: str
    instance_url: str
    auth_method: str
    salesforce_org_id: str = ""
    api_version: str = ""
    head_snapshot_id: str | None = None
    role: str = Field(description="the caller's role in this org")


class OrgList(Page):
    items: list[OrgOut]


# --- runs ----------------------------------------------------------------------------------------


class RunCreate(_In):
    full: bool = Field(False, description="read every object in full (default: incremental when possible)")


class RunOut(BaseModel):
    org: str
    run_id: str
    kind: str
    status: str
    started_at: str
    finished_at: str | None = None
    parent_snapshot_id: str | None = None
    message: str = ""
    stats: dict[str, Any] = Field(default_factory=dict)


class RunList(Page):
    items: list[RunOut]


# --- snapshots & objects -------------------------------------------------------------------------


class SnapshotOut(BaseModel):
    org: str
    snapshot_id: str
    created_at: str
    kind: str
    parent_id: str | None = None
    salesforce_org_id: str = ""
    objects: int = 0
    records: int = 0
    files: int = 0
    stored_bytes: int = 0


class SnapshotList(Page):
    items: list[SnapshotOut]


class ObjectOut(BaseModel):
    name: str
    records: int
    fields: list[str]
    watermark: str | None = None
    layers: int = 0


class ObjectList(Page):
    snapshot_id: str
    items: list[ObjectOut]


# --- records, history, diff ----------------------------------------------------------------------


class RecordPageOut(Page):
    snapshot_id: str
    object: str
    items: list[dict[str, Any]]


class RecordOut(BaseModel):
    snapshot_id: str
    object: str
    record_id: str
    state: str = Field(description="present, deleted or absent at that snapshot")
    record: dict[str, Any] | None = None


class VersionOut(BaseModel):
    snapshot_id: str
    until_snapshot_id: str = ""
    created_at: str
    state: str
    record: dict[str, Any] | None = None
    changes: dict[str, list[Any]] = Field(default_factory=dict)


class HistoryOut(BaseModel):
    org: str
    object: str
    record_id: str
    snapshots_searched: int
    versions: list[VersionOut]


class DiffEntry(BaseModel):
    object: str
    change: Literal["added", "deleted", "changed"]
    record_id: str
    record: dict[str, Any] | None = None
    changes: dict[str, list[Any]] | None = None


class DiffObjectCounts(BaseModel):
    object: str
    added: int
    deleted: int
    changed: int
    note: str = ""


class DiffPageOut(Page):
    org: str
    older: str
    newer: str
    objects: list[DiffObjectCounts]
    items: list[DiffEntry]


# --- restores ------------------------------------------------------------------------------------


class RestoreCreate(_In):
    object: str = Field(pattern=OBJECT, description="the object to restore")
    mode: Literal["revert-fields", "recreate-deleted", "upsert"] = "recreate-deleted"
    snapshot_id: str | None = Field(None, pattern=RUN_ID)
    at: str | None = Field(None, max_length=40, description="ISO 8601 point in time (instead of snapshot_id)")
    ids: list[str] = Field(default_factory=list, max_length=10_000)
    where: str | None = Field(None, max_length=2000)
    with_children: bool = False
    target: str | None = Field(None, pattern=NAME, description="another connected org to restore into")
    external_id_field: str | None = Field(None, pattern=FIELD)
    skip_missing_fields: bool = False
    fields: list[str] = Field(default_factory=list, max_length=500)


class PlannedWriteOut(BaseModel):
    object: str
    operation: str
    source_id: str
    target_id: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)


class RestoreOut(BaseModel):
    org: str
    restore_id: str
    status: str = Field(description="awaiting-approval, running, paused, failed or completed")
    object: str
    mode: str
    snapshot_id: str
    target: str
    requested_by: str = ""
    approved_by: str | None = None
    message: str = ""
    counts: dict[str, int] = Field(default_factory=dict)
    planned: list[PlannedWriteOut] = Field(
        default_factory=list, description="the dry run's writes (first 1000 only)"
    )
    planned_total: int = 0


class RestoreList(Page):
    items: list[RestoreOut]


class RestoreResultOut(BaseModel):
    operation: str
    source_id: str
    success: bool
    target_id: str | None = None
    errors: list[str] = Field(default_factory=list)


class RestoreResultPage(Page):
    restore_id: str
    status: str
    items: list[RestoreResultOut]


# --- verify --------------------------------------------------------------------------------------


class VerifyCreate(_In):
    snapshot_id: str | None = Field(None, pattern=RUN_ID)
    check_files: bool = True


class VerifyProblemOut(BaseModel):
    kind: str
    object: str | None = None
    seq: int | None = None
    key: str | None = None
    detail: str = ""


class VerifyOut(BaseModel):
    org: str
    snapshot_id: str
    ok: bool
    objects: int
    chunks: int
    records: int
    files: int
    file_bytes: int
    chain_length: int
    bad_objects: list[str]
    problems: list[VerifyProblemOut]


class RunStarted(BaseModel):
    org: str
    run_id: str | None = Field(None, description="known at once locally; in AWS see the execution")
    execution_id: str | None = None
    status: str
