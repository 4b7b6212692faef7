"""The few calls the backup service makes into planning, the vault and manifests, in one place.

Kept apart from :mod:`orgvault.services.backup` so the orchestration reads as policy (what to do
when) and this module as mechanism (how a chunk, a file or a manifest is written and read).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import zstandard

from orgvault.domain.chunks import EncodedChunk, chunk_fields, decode_chunk
from orgvault.domain.manifest import Manifest, next_manifest, object_update
from orgvault.domain.models import (
    Checkpoint,
    ChunkKind,
    ChunkRecord,
    FileRecord,
    ObjectState,
    OrgConnection,
    Run,
    SnapshotRecord,
)
from orgvault.domain.plan import ObjectPlan, PlanSettings, SkippedObject, build_plan, skip_reason
from orgvault.domain.record_index import record_ids
from orgvault.errors import IntegrityError, SalesforceRequestError
from orgvault.ports import Catalog, SalesforceSource
from orgvault.services.browse import write_chunk_index


def plan_objects(
    source: SalesforceSource, settings: PlanSettings, *, describe: Any = None, prefetch: Any = None
) -> tuple[list[ObjectPlan], list[SkippedObject]]:
    """describeGlobal + describe → the objects to back up and the skipped ones with reasons.
    ``prefetch(names)``: told every object that will be described, before the first describe (to
    describe them in batches)."""
    sobjects = source.list_objects()
    if prefetch is not None:
        prefetch([str(e.get("name", "")) for e in sobjects if skip_reason(e, settings) is None])
    plan = build_plan(
        sobjects,
        describe or source.describe,
        settings,
        on_describe_error=(SalesforceRequestError,),
    )
    return list(plan.objects), list(plan.skipped)


# --- vault -----------------------------------------------------------------------------------


def write_chunk(
    vault: Any,
    conn: OrgConnection,
    run_id: str,
    object_name: str,
    seq: int,
    kind: ChunkKind,
    records: Any,
    ids: list[str] | None = None,
) -> ChunkRecord:
    """Seal and store one chunk, then its point-in-time id index (what ``Snapshots.lookup`` reads
    instead of decrypting chunks; built from the plaintext held here, so no decrypt is needed).
    ``records``: an ``EncodedChunk`` from a ChunkBuilder, or a list of records; ``ids``: the Ids of
    an ``EncodedChunk`` in order (decoded from its plaintext payload when not given). IDS chunks
    (reconciliation reads, never in a manifest) get no index."""
    chunk = vault.write_chunk(conn.name, conn.key_ref, run_id, object_name, seq, kind, records)
    if kind is not ChunkKind.IDS:
        if isinstance(records, EncodedChunk):
            if ids is None or len(ids) != records.records:
                ids = record_ids(decode_chunk(records.payload))
        else:
            ids = record_ids(records)
        write_chunk_index(vault, conn.name, conn.key_ref, chunk.sha256, ids)
    return chunk


def read_chunk(vault: Any, chunk: ChunkRecord) -> Iterator[dict[str, Any]]:
    return vault.read_chunk(chunk.org, chunk.object_name, chunk)


def write_file(
    vault: Any, conn: OrgConnection, source: str, parts: Iterable[bytes], stamp: str
) -> FileRecord:
    stored = vault.write_file_stream(conn.name, conn.key_ref, parts)
    return vault.file_record(conn.name, source, stored, source_stamp=stamp)


def file_ref(file: FileRecord) -> dict[str, Any]:
    from orgvault.domain.layout import FileRef

    return FileRef(file.content_id, file.size).to_value()


def read_manifest(vault: Any, catalog: Catalog, snapshot: SnapshotRecord) -> Manifest:
    return vault.read_snapshot_manifest(snapshot)


def manifest_object(manifest: Manifest | None, name: str) -> dict[str, Any] | None:
    if manifest is None or name not in manifest.objects:
        return None
    entry = manifest.objects[name]
    return {"fields_hash": entry.fields_hash, "watermark": entry.watermark, "records": entry.records}


def iter_ids(vault: Any, catalog: Catalog, snapshot: SnapshotRecord, object_name: str) -> Iterator[str]:
    """Every live Id of ``object_name`` at ``snapshot`` (empty if the object is not in it)."""
    manifest = read_manifest(vault, catalog, snapshot)
    if object_name not in manifest.objects:
        return iter(())
    return iter(live_ids(vault, manifest.org, manifest.objects[object_name]))


def chunk_ids(vault: Any, org: str, object_name: str, ref: Any) -> list[str]:
    """The Ids in one chunk, authenticated like any read, without decoding whole rows: rows are
    JSON arrays whose first value is the Id when the header's first field is ``Id`` (as the
    backup writes them); otherwise the rows are decoded in full."""
    payload = vault.read_chunk_payload(org, object_name, ref)
    if chunk_fields(payload)[:1] != ("Id",):
        return [r["Id"] for r in decode_chunk(payload)]
    lines = zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=True).read().split(b"\n")
    out = [json.loads(line.split(b",", 1)[0].lstrip(b"[").rstrip(b"]")) for line in lines[1:] if line]
    if len(out) != ref.records:
        raise IntegrityError(f"chunk {ref.key} holds {len(out)} records, the manifest says {ref.records}")
    return out


def live_ids(vault: Any, org: str, entry: Any) -> set[str]:
    """The live Ids of a manifest object entry: its layers applied in order on Ids only (records
    add, tombstones remove; the backup writes a flush's tombstones before its records)."""
    ids: set[str] = set()
    for layer in entry.layers:
        for ref in sorted(layer.chunks, key=lambda c: c.seq):
            if ref.kind == ChunkKind.IDS:
                continue
            found = chunk_ids(vault, org, entry.name, ref)
            if ref.kind == ChunkKind.TOMBSTONES:
                ids.difference_update(found)
            else:
                ids.update(found)
    return ids


def commit_snapshot(
    vault: Any,
    catalog: Catalog,
    conn: OrgConnection,
    run: Run,
    parent: SnapshotRecord | None,
    checkpoints: list[Checkpoint],
    chunks: list[ChunkRecord],
    *,
    now: datetime,
    salesforce_org_id: str,
) -> SnapshotRecord:
    """Build the manifest (parent + this run), write it, then commit the snapshot record."""
    parent_manifest = read_manifest(vault, catalog, parent) if parent else None
    by_object: dict[str, list[ChunkRecord]] = {}
    for ch in chunks:
        by_object.setdefault(ch.object_name, []).append(ch)
    updates = {}
    for cp in checkpoints:
        assert cp.state is ObjectState.DONE
        cur = cp.cursor
        fields = [tuple(x) for x in cur.get("field_specs", [])]
        full = cur.get("mode", "full") == "full"
        count = cur.get("live_count")
        if full:
            count = cp.records
        elif count is None and not by_object.get(cp.object_name) and parent_manifest is not None:
            entry = parent_manifest.objects.get(cp.object_name)
            count = entry.records if entry is not None else None  # nothing changed: the parent's count
        updates[cp.object_name] = object_update(
            fields=fields,
            chunks=by_object.get(cp.object_name, []),
            full=full,
            watermark=cp.watermark,
            records=count,
            fields_hash=cp.fields_hash,
            strategy=cp.strategy,
        )
    removed = list(run.stats.get("removed", []))
    manifest = next_manifest(
        parent_manifest,
        org=conn.name,
        snapshot_id=run.run_id,
        created_at=now.isoformat(),
        run_kind=run.kind,
        updates=updates,
        removed=removed,
        parent_manifest_sha256=parent.manifest_sha256 if parent else None,
        salesforce_org_id=salesforce_org_id,
    )
    manifest = _exact_counts(vault, manifest, [n for n, u in updates.items() if u.records is None])
    key, sha256 = vault.write_manifest(conn.key_ref, manifest)
    stored = sum(ch.stored_bytes for ch in chunks) + (parent.stored_bytes if parent else 0)
    files = len(catalog.list_files(conn.name))
    record = SnapshotRecord(
        org=conn.name,
        snapshot_id=run.run_id,
        created_at=now,
        kind=run.kind,
        manifest_key=key,
        manifest_sha256=sha256,
        parent_id=parent.snapshot_id if parent else None,
        salesforce_org_id=manifest.salesforce_org_id,
        objects=len(manifest.objects),
        records=manifest.records,
        files=files,
        stored_bytes=stored,
    )
    catalog.commit_snapshot(record, expected_head=parent.snapshot_id if parent else None)
    return record


def _exact_counts(vault: Any, manifest: Manifest, names: list[str]) -> Manifest:
    """Live record counts for objects whose count the run could not know (a delta without
    reconciliation): counted by reading the snapshot (local work, no API calls)."""
    if not names:
        return manifest
    from orgvault.domain.manifest import with_counts

    counts = {n: len(live_ids(vault, manifest.org, manifest.objects[n])) for n in names}
    return with_counts(manifest, counts)
