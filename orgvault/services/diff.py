"""Compare two snapshots of an org: records added, deleted and changed (field by field).

Contract: :func:`diff_snapshots` compares per object (all objects, or one). When the newer
snapshot's layers extend the older one's (the usual incremental chain), only the records named in
the extra delta layers are compared, so the cost follows the size of the change, not of the org;
otherwise (a full re-read in between) both sides are streamed and compared in full. Bookkeeping
fields (SystemModstamp, LastModifiedDate, ...) alone never make a record "changed". The order of
the two snapshots does not matter for what is reported, only for the direction (older -> newer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from orgvault.domain import record_index as ri
from orgvault.domain.manifest import Manifest, ObjectEntry
from orgvault.domain.models import ChunkKind, SnapshotRecord
from orgvault.domain.restore_plan import changed_fields, data_changes
from orgvault.services.browse import Snapshots

Record = dict[str, Any]
FULL_COMPARE_THRESHOLD = 2000  # above this many changed ids, stream the object instead of looking up


@dataclass
class ObjectDiff:
    object_name: str
    added: list[Record] = field(default_factory=list)
    deleted: list[Record] = field(default_factory=list)
    changed: list[tuple[str, dict[str, tuple[Any, Any]]]] = field(default_factory=list)
    note: str = ""  # "new object" / "object removed"

    @property
    def empty(self) -> bool:
        return not (self.added or self.deleted or self.changed or self.note)


@dataclass
class SnapshotDiff:
    org: str
    older: SnapshotRecord
    newer: SnapshotRecord
    objects: list[ObjectDiff]

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            o.object_name: {"added": len(o.added), "deleted": len(o.deleted), "changed": len(o.changed)}
            for o in self.objects
            if not o.empty
        }


def diff_snapshots(
    snapshots: Snapshots,
    org: str,
    snap_a: str,
    snap_b: str,
    object_name: str | None = None,
    *,
    key_ref: str = "",
) -> SnapshotDiff:
    a, b = snapshots.catalog.get_snapshot(org, snap_a), snapshots.catalog.get_snapshot(org, snap_b)
    if (a.created_at, a.snapshot_id) > (b.created_at, b.snapshot_id):
        a, b = b, a
    ma, mb = snapshots.manifest(a), snapshots.manifest(b)
    if object_name is not None:
        names = [snapshots.entry(mb if _has(mb, object_name) else ma, object_name).name]
    else:
        names = sorted(set(ma.objects) | set(mb.objects))
    out = []
    for name in names:
        ea, eb = ma.objects.get(name), mb.objects.get(name)
        if ea is None and eb is not None:
            d = ObjectDiff(name, added=list(snapshots.records(org, mb, name)), note="new object")
        elif eb is None and ea is not None:
            d = ObjectDiff(name, deleted=list(snapshots.records(org, ma, name)), note="object removed")
        elif ea is not None and eb is not None:
            d = _diff_object(snapshots, org, ma, mb, ea, eb, key_ref)
        else:
            continue
        out.append(d)
    return SnapshotDiff(org, a, b, out)


def _has(m: Manifest, name: str) -> bool:
    return any(n.lower() == name.lower() for n in m.objects)


def _diff_object(
    snapshots: Snapshots, org: str, ma: Manifest, mb: Manifest, ea: ObjectEntry, eb: ObjectEntry, key_ref: str
) -> ObjectDiff:
    d = ObjectDiff(ea.name)
    if ea.layers == eb.layers:
        return d
    n = len(ea.layers)
    if eb.layers[:n] == ea.layers:
        candidates: set[str] = set()
        for layer in eb.layers[n:]:
            for ref in layer.chunks:
                if ref.kind == ChunkKind.IDS:
                    continue
                candidates.update(
                    ri.id15(i) for i in ri.record_ids(snapshots.chunk_records(org, ea.name, ref))
                )
        if len(candidates) <= FULL_COMPARE_THRESHOLD:
            for rid in sorted(candidates):
                la = snapshots.lookup(org, key_ref, ma, ea.name, rid)
                lb = snapshots.lookup(org, key_ref, mb, eb.name, rid)
                _compare(d, rid, la.record, lb.record)
            return d
        old = {ri.id15(r["Id"]): r for r in _only(snapshots.records(org, ma, ea.name), candidates)}
        new = {ri.id15(r["Id"]): r for r in _only(snapshots.records(org, mb, eb.name), candidates)}
    else:
        old = {ri.id15(r["Id"]): r for r in snapshots.records(org, ma, ea.name)}
        new = {ri.id15(r["Id"]): r for r in snapshots.records(org, mb, eb.name)}
    for rid in sorted(old.keys() | new.keys()):
        _compare(d, rid, old.get(rid), new.get(rid))
    return d


def _only(records: Iterator[Record], ids: set[str]) -> Iterator[Record]:
    return (r for r in records if r.get("Id") and ri.id15(r["Id"]) in ids)


def _compare(d: ObjectDiff, rid: str, old: Record | None, new: Record | None) -> None:
    if old is None and new is not None:
        d.added.append(new)
    elif old is not None and new is None:
        d.deleted.append(old)
    elif old is not None and new is not None:
        changes = data_changes(changed_fields(old, new))
        if changes:
            d.changed.append((str(new.get("Id") or rid), changes))
