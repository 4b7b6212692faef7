"""Browse backed-up records as they were at a snapshot or a point in time; find one record fast.

Contracts:

- Everything is decrypted in memory only; nothing decrypted is written to disk. The only objects
  this module writes are sealed per-chunk *id indexes* (``orgs/{org}/index/{chunk_sha256}.ovx``,
  see :mod:`orgvault.domain.record_index`), write-once and derived: deleting them costs time, never
  correctness.
- :meth:`Snapshots.resolve` picks a committed snapshot by id or by time (the newest one created at or
  before ``at``); raises ``SnapshotNotFound``.
- :meth:`Snapshots.records` streams an object's records at a snapshot: layers applied in order
  (records upsert by Id, tombstones delete), memory bounded by the delta layers' id sets.
- :meth:`Snapshots.lookup` finds one record at a snapshot by id, decrypting at most two data
  chunks (the one holding the record, and a tombstone chunk if it was deleted) whatever the number
  of layers; ``stats`` counts what was decrypted.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orgvault.domain import layout
from orgvault.domain import record_index as ri
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
from orgvault.domain.manifest import ChunkRef, LayerKind, Manifest, ObjectEntry
from orgvault.domain.models import ChunkKind, SnapshotRecord
from orgvault.errors import ConfigError, ObjectExists, ObjectNotFound, OrgVaultError, SnapshotNotFound
from orgvault.ports import Catalog
from orgvault.services.restore_filter import parse_where, predicate, project
from orgvault.services.vault import Vault

Record = dict[str, Any]
INDEX_EXT = ".ovx"


def index_key(org: str, chunk_sha256: str) -> str:
    return f"{layout.org_prefix(org)}index/{chunk_sha256}{INDEX_EXT}"


def index_context(org: str, chunk_sha256: str) -> dict[str, str]:
    return {"org": org, "object": "$index", "chunk": chunk_sha256, "v": "1"}


def parse_time(text: str) -> datetime:
    """ISO 8601 date or datetime (``2026-01-31``, ``2026-01-31T12:00``, ``...Z``, ``...+00:00``); UTC if naive."""
    t = text.strip().replace(" ", "T")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError as exc:
        raise ConfigError(f"--at {text!r} is not a date or datetime (e.g. 2026-01-31T12:00:00Z)") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class LookupStats:
    data_chunks_decrypted: int = 0
    index_objects_read: int = 0
    indexes_built: int = 0
    chunk_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Lookup:
    """One record at one snapshot. ``state``: ``live`` (record set), ``deleted`` (a tombstone says
    so), or ``absent`` (never backed up at that snapshot)."""

    object_name: str
    record_id: str
    state: str
    record: Record | None = None
    chunk_key: str = ""


class Snapshots:
    """Read-side access to an org's snapshots (thread-safe caches: manifests, id indexes, chunks)."""

    def __init__(
        self,
        catalog: Catalog,
        vault: Vault,
        *,
        index_cache: int = 4096,
        chunk_cache: int = 4,
        write_indexes: bool = True,
    ) -> None:
        self.catalog = catalog
        self.vault = vault
        self.write_indexes = write_indexes
        self.stats = LookupStats()
        self._manifests: dict[tuple[str, str], Manifest] = {}
        self._indexes: OrderedDict[str, ri.IdIndex] = OrderedDict()
        self._chunks: OrderedDict[str, dict[str, Record]] = OrderedDict()
        self._index_cache = index_cache
        self._chunk_cache = chunk_cache
        self._lock = threading.Lock()

    # --- snapshots and manifests ------------------------------------------------------------------

    def resolve(self, org: str, snapshot_id: str | None = None, at: datetime | str | None = None) -> SnapshotRecord:
        """The snapshot named, or the newest created at or before ``at``, or the head."""
        if snapshot_id:
            return self.catalog.get_snapshot(org, snapshot_id)
        snaps = self.catalog.list_snapshots(org)
        if at is not None:
            when = parse_time(at) if isinstance(at, str) else at
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            eligible = [s for s in snaps if _aware(s.created_at) <= when]
            if not eligible:
                raise SnapshotNotFound(f"no snapshot of {org} was taken at or before {when.isoformat()}")
            return eligible[-1]
        if not snaps:
            raise SnapshotNotFound(f"{org} has no snapshot yet; run `orgvault backup {org}` first")
        return snaps[-1]

    def manifest(self, snap: SnapshotRecord) -> Manifest:
        key = (snap.org, snap.snapshot_id)
        with self._lock:
            if key in self._manifests:
                return self._manifests[key]
        m = self.vault.read_snapshot_manifest(snap)
        with self._lock:
            self._manifests[key] = m
        return m

    def entry(self, manifest: Manifest, object_name: str) -> ObjectEntry:
        for name, e in manifest.objects.items():
            if name.lower() == object_name.lower():
                return e
        raise ConfigError(
            f"snapshot {manifest.snapshot_id} has no object {object_name!r} "
            f"(it has {len(manifest.objects)} objects, e.g. {', '.join(sorted(manifest.objects)[:8])})"
        )

    @staticmethod
    def key_prefixes(manifest: Manifest) -> dict[str, str]:
        """Key prefix -> object, learnt from the ids the snapshot holds."""
        out: dict[str, str] = {}
        for name, e in manifest.objects.items():
            for c in e.chunks():
                for rid in (c.first_id, c.last_id):
                    if rid and len(rid) >= 3 and c.kind != ChunkKind.IDS:
                        out.setdefault(rid[:3], name)
        return out

    def object_for_id(self, manifest: Manifest, record_id: str) -> str:
        obj = self.key_prefixes(manifest).get(record_id[:3])
        if obj is None:
            raise ConfigError(f"no backed-up object has ids starting with {record_id[:3]!r}; name the object")
        return obj

    # --- chunk access -------------------------------------------------------------------------------

    def chunk_records(self, org: str, object_name: str, ref: ChunkRef) -> Iterator[Record]:
        """A chunk's records, authenticated (counted in ``stats``)."""
        with self._lock:
            self.stats.data_chunks_decrypted += 1
            self.stats.chunk_keys.append(ref.key)
        return self.vault.read_chunk(org, object_name, ref)

    def _chunk_by_id(self, org: str, object_name: str, ref: ChunkRef) -> dict[str, Record]:
        with self._lock:
            hit = self._chunks.get(ref.key)
            if hit is not None:
                self._chunks.move_to_end(ref.key)
                return hit
        by_id = {ri.id15(r["Id"]): r for r in self.chunk_records(org, object_name, ref) if r.get("Id")}
        with self._lock:
            self._chunks[ref.key] = by_id
            while len(self._chunks) > self._chunk_cache:
                self._chunks.popitem(last=False)
        return by_id

    def id_index(self, org: str, key_ref: str, object_name: str, ref: ChunkRef) -> ri.IdIndex:
        """The id index of a chunk: from memory, else from the vault, else built from the chunk
        (and stored, sealed, for next time)."""
        with self._lock:
            idx = self._indexes.get(ref.sha256)
            if idx is not None:
                self._indexes.move_to_end(ref.sha256)
                return idx
        idx = self._load_index(org, ref)
        if idx is None:
            ids = ri.record_ids(self.chunk_records(org, object_name, ref))
            idx = ri.IdIndex(ref.sha256, tuple(sorted({ri.id15(i) for i in ids})))
            with self._lock:
                self.stats.indexes_built += 1
            if self.write_indexes:
                self.store_index(org, key_ref, ref.sha256, ids)
        with self._lock:
            self._indexes[ref.sha256] = idx
            while len(self._indexes) > self._index_cache:
                self._indexes.popitem(last=False)
        return idx

    def _load_index(self, org: str, ref: ChunkRef) -> ri.IdIndex | None:
        key = index_key(org, ref.sha256)
        try:
            data = self.vault.store.get(key)
        except ObjectNotFound:
            return None
        what = f"id index {key}"
        expected = index_context(org, ref.sha256)

        def resolve(header: EnvelopeHeader) -> bytes:
            if header.kind != "index":
                raise EnvelopeError(f"{what} is a sealed {header.kind!r}", reason=Reason.MISPLACED)
            check_context(header, expected, what=what)
            return self.vault.keys.decrypt_data_key(header.key_ref, header.wrapped_key, dict(expected))

        try:
            _, plain = open_envelope(data, resolve, what=what)
            idx = ri.parse_index(plain)
        except (OrgVaultError, ValueError):
            return None  # a damaged index costs time, never correctness: rebuild from the chunk
        with self._lock:
            self.stats.index_objects_read += 1
        return idx if idx.chunk_sha256 == ref.sha256 else None

    def store_index(self, org: str, key_ref: str, chunk_sha256: str, ids: list[str]) -> str:
        """Seal and store the id index of one chunk (idempotent: an existing index is kept).
        The backup may call this right after writing a chunk, with the chunk's record ids."""
        key = index_key(org, chunk_sha256)
        if self.vault.store.exists(key):
            return key
        ctx = index_context(org, chunk_sha256)
        dk = self.vault.keys.generate_data_key(key_ref, ctx)
        header = EnvelopeHeader(
            kind="index",
            key_ref=dk.key_ref,
            wrapped_key=dk.wrapped,
            nonce_prefix=new_nonce_prefix(),
            context=ctx,
            compression=Compression.ZSTD,
        )
        sealed = seal(dk.plaintext, header, ri.index_payload(chunk_sha256, ids))
        with contextlib.suppress(ObjectExists):  # a concurrent reader stored it first
            self.vault.store.put(key, sealed)
        return key

    # --- reading ------------------------------------------------------------------------------------

    def records(self, org: str, manifest: Manifest, object_name: str) -> Iterator[Record]:
        """Every live record of an object at the snapshot. Delta layers are read first (newest
        version of each changed id kept in memory), then base chunks stream, skipping ids a delta
        replaced or deleted."""
        e = self.entry(manifest, object_name)
        base = [layer for layer in e.layers if layer.kind == LayerKind.BASE][-1:]
        start = e.layers.index(base[0]) if base else 0
        later = e.layers[start + 1 :]
        latest: dict[str, Record | None] = {}
        for layer in later:
            for ref in layer.chunks:
                if ref.kind == ChunkKind.IDS:
                    continue
                for r in self.chunk_records(org, e.name, ref):
                    rid = r.get("Id")
                    if rid:
                        latest[ri.id15(rid)] = None if ref.kind == ChunkKind.TOMBSTONES else r
        if base:
            for ref in base[0].chunks:
                # a full read's tombstones (rows read with IsDeleted) are simply not live
                if ref.kind in (ChunkKind.IDS, ChunkKind.TOMBSTONES):
                    continue
                for r in self.chunk_records(org, e.name, ref):
                    rid = r.get("Id")
                    if rid and ri.id15(rid) not in latest:
                        yield r
        for r in latest.values():
            if r is not None:
                yield r

    def lookup(self, org: str, key_ref: str, manifest: Manifest, object_name: str, record_id: str) -> Lookup:
        """One record at the snapshot, newest layer first, confirmed in the decrypted chunk."""
        e = self.entry(manifest, object_name)
        for layer in reversed(e.layers):
            for ref in ri.candidates([c for c in layer.chunks if c.kind != ChunkKind.IDS], record_id):
                if record_id not in self.id_index(org, key_ref, e.name, ref):
                    continue
                if ref.kind == ChunkKind.TOMBSTONES:
                    return Lookup(e.name, record_id, "deleted", chunk_key=ref.key)
                rec = self._chunk_by_id(org, e.name, ref).get(ri.id15(record_id))
                if rec is not None:
                    return Lookup(e.name, record_id, "live", dict(rec), chunk_key=ref.key)
            if layer.kind == LayerKind.BASE:
                break
        return Lookup(e.name, record_id, "absent")


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BrowseResult:
    snapshot: SnapshotRecord
    object_name: str
    fields: tuple[str, ...]
    records: Iterator[Record]


def browse(
    snapshots: Snapshots,
    org: str,
    object_name: str,
    *,
    snapshot_id: str | None = None,
    at: str | datetime | None = None,
    where: str | list[str] | None = None,
    fields: list[str] | None = None,
    ids: list[str] | None = None,
    limit: int | None = None,
    key_ref: str = "",
) -> BrowseResult:
    """Records of ``object_name`` as they were at a snapshot (by id, by time, or the head),
    filtered by ``where`` (see :mod:`orgvault.services.restore_filter`) and ``ids``, projected to
    ``fields``. With ``ids`` only, records are found through the id indexes (no full scan)."""
    snap = snapshots.resolve(org, snapshot_id, at)
    manifest = snapshots.manifest(snap)
    entry = snapshots.entry(manifest, object_name)
    test = predicate(parse_where(where))
    names = tuple(fields) if fields else tuple(n for n, _t in entry.fields)

    def gen() -> Iterator[Record]:
        n = 0
        if ids:
            source: Iterator[Record] = (
                lk.record
                for i in ids
                if (lk := snapshots.lookup(org, key_ref, manifest, entry.name, i)).record is not None
            )
        else:
            source = snapshots.records(org, manifest, entry.name)
        for r in source:
            if test(r):
                yield project(r, fields)
                n += 1
                if limit is not None and n >= limit:
                    return

    return BrowseResult(snap, entry.name, names, gen())


def record_digest(record: Mapping[str, Any]) -> str:
    """A stable digest of a record's values (used to spot unchanged versions quickly)."""
    import json

    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


RecordTest = Callable[[Mapping[str, Any]], bool]
