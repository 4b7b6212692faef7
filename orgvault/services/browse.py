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
        self._chunks: OrderedDict[str, bytes] = OrderedDict()
        self._summaries: dict[str, dict[str, ri.Range]] = {}
        self._index_cache = index_cache
        self._chunk_cache = chunk_cache
        self._lock = threading.Lock()

    # --- snapshots and manifests ------------------------------------------------------------------

    def resolve(
        self, org: str, snapshot_id: str | None = None, at: datetime | str | None = None
    ) -> SnapshotRecord:
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

    def _find(self, org: str, object_name: str, ref: ChunkRef, record_id: str) -> Record | None:
        """One record of a chunk, authenticated; only the rows mentioning the id are parsed. The
        last few payloads stay in memory (decrypted records never go to disk)."""
        with self._lock:
            payload = self._chunks.get(ref.key)
            if payload is not None:
                self._chunks.move_to_end(ref.key)
        if payload is None:
            with self._lock:
                self.stats.data_chunks_decrypted += 1
                self.stats.chunk_keys.append(ref.key)
            payload = self.vault.read_chunk_payload(org, object_name, ref)
            with self._lock:
                self._chunks[ref.key] = payload
                while len(self._chunks) > self._chunk_cache:
                    self._chunks.popitem(last=False)
        return ri.find_in_payload(payload, record_id)

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
            idx = ri.IdIndex.of(ref.sha256, ids)
            with self._lock:
                self.stats.indexes_built += 1
            if self.write_indexes:
                self.store_index(org, key_ref, ref.sha256, ids)
        with self._lock:
            self._indexes[ref.sha256] = idx
            while len(self._indexes) > self._index_cache:
                self._indexes.popitem(last=False)
        return idx

    def ranges(self, org: str, key_ref: str, entry: ObjectEntry) -> dict[str, ri.Range]:
        """Chunk sha256 -> (min id, max id, count) for every chunk of an object at a snapshot: one
        small sealed summary object (built from the chunk indexes on first use), so a lookup prunes
        each layer to the one chunk whose id range holds the id, whatever the read order was."""
        refs = [c for c in entry.chunks() if c.kind != ChunkKind.IDS]
        skey = ri.summary_key([c.sha256 for c in refs])
        with self._lock:
            hit = self._summaries.get(skey)
        if hit is not None:
            return hit
        raw = self._open_sealed(org, index_key(org, "objects-" + skey), "objects-" + skey)
        ranges: dict[str, ri.Range] | None = None
        if raw is not None:
            try:
                ranges = ri.parse_summary(raw)
            except ValueError:
                ranges = None
        if ranges is None or any(c.sha256 not in ranges for c in refs):
            ranges = {}
            in_delta = {
                c.sha256 for layer in entry.layers if layer.kind != LayerKind.BASE for c in layer.chunks
            }
            for c in refs:
                idx = self.id_index(org, key_ref, entry.name, c)
                bloom = (idx.bloom or ri.bloom_of(idx.ids)) if c.sha256 in in_delta else b""
                ranges[c.sha256] = (
                    (idx.first(), idx.last(), len(idx), bloom) if len(idx) else ("", "", 0, b"")
                )
            if self.write_indexes:
                self._seal_put(org, key_ref, "objects-" + skey, ri.summary_payload(ranges))
        with self._lock:
            self._summaries[skey] = ranges
        return ranges

    def _seal_put(self, org: str, key_ref: str, name: str, payload: bytes) -> None:
        key = index_key(org, name)
        if self.vault.store.exists(key):
            return
        ctx = index_context(org, name)
        dk = self.vault.keys.generate_data_key(key_ref, ctx)
        header = EnvelopeHeader(
            kind="index",
            key_ref=dk.key_ref,
            wrapped_key=dk.wrapped,
            nonce_prefix=new_nonce_prefix(),
            context=ctx,
            compression=Compression.ZSTD,
        )
        with contextlib.suppress(ObjectExists):
            self.vault.store.put(key, seal(dk.plaintext, header, payload))

    def _open_sealed(self, org: str, key: str, name: str) -> bytes | None:
        try:
            data = self.vault.store.get(key)
        except ObjectNotFound:
            return None
        expected = index_context(org, name)

        def resolve(header: EnvelopeHeader) -> bytes:
            if header.kind != "index":
                raise EnvelopeError(f"{key} is a sealed {header.kind!r}", reason=Reason.MISPLACED)
            check_context(header, expected, what=key)
            return self.vault.keys.decrypt_data_key(header.key_ref, header.wrapped_key, dict(expected))

        try:
            _, plain = open_envelope(data, resolve, what=key)
        except OrgVaultError:
            return None
        with self._lock:
            self.stats.index_objects_read += 1
        return plain

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
        """Seal and store the id index of one chunk (idempotent: an existing index is kept)."""
        return write_chunk_index(self.vault, org, key_ref, chunk_sha256, ids)

    def build_indexes(self, org: str, key_ref: str, snap: SnapshotRecord) -> int:
        """Make sure every chunk of a snapshot has its id index (after a backup, so that the first
        lookups are fast too). Returns how many indexes were built."""
        manifest = self.manifest(snap)
        built = self.stats.indexes_built
        for name, ref in manifest.chunk_refs():
            if ref.kind != ChunkKind.IDS:
                self.id_index(org, key_ref, name, ref)
        for entry in manifest.objects.values():
            self.ranges(org, key_ref, entry)
        return self.stats.indexes_built - built

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
        for rec in latest.values():
            if rec is not None:
                yield rec

    def lookup(self, org: str, key_ref: str, manifest: Manifest, object_name: str, record_id: str) -> Lookup:
        """One record at the snapshot, newest layer first, confirmed in the decrypted chunk."""
        e = self.entry(manifest, object_name)
        ranges = self.ranges(org, key_ref, e)
        key = ri.id15(record_id)
        for layer in reversed(e.layers):
            chunks = [c for c in layer.chunks if c.kind != ChunkKind.IDS]
            chunks = [c for c in chunks if c.sha256 not in ranges or _may_hold(ranges[c.sha256], key)]
            for ref in ri.candidates(chunks, record_id):
                if record_id not in self.id_index(org, key_ref, e.name, ref):
                    continue
                if ref.kind == ChunkKind.TOMBSTONES:
                    return Lookup(e.name, record_id, "deleted", chunk_key=ref.key)
                rec = self._find(org, e.name, ref, record_id)
                if rec is not None:
                    return Lookup(e.name, record_id, "live", dict(rec), chunk_key=ref.key)
            if layer.kind == LayerKind.BASE:
                break
        return Lookup(e.name, record_id, "absent")


def write_chunk_index(vault: Vault, org: str, key_ref: str, chunk_sha256: str, ids: list[str]) -> str:
    """Seal and store the id index of one chunk; idempotent. What the backup calls right after
    ``Vault.write_chunk`` (it holds the records): ``write_chunk_index(vault, org, key_ref,
    chunk.sha256, record_index.record_ids(records))``. Returns the index's key."""
    key = index_key(org, chunk_sha256)
    if vault.store.exists(key):
        return key
    ctx = index_context(org, chunk_sha256)
    dk = vault.keys.generate_data_key(key_ref, ctx)
    header = EnvelopeHeader(
        kind="index",
        key_ref=dk.key_ref,
        wrapped_key=dk.wrapped,
        nonce_prefix=new_nonce_prefix(),
        context=ctx,
        compression=Compression.ZSTD,
    )
    sealed = seal(dk.plaintext, header, ri.index_payload(chunk_sha256, ids))
    with contextlib.suppress(ObjectExists):  # a concurrent writer stored it first
        vault.store.put(key, sealed)
    return key


def _may_hold(r: ri.Range, key: str) -> bool:
    lo, hi, n, bloom = r
    return bool(n) and lo <= key <= hi and ri.bloom_may_contain(bloom, key)


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
