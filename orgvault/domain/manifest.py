"""Snapshot manifests (docs/format.md, "Manifest"): one sealed JSON document per snapshot, written last.

A manifest lists, per object, the ordered *layers* that make up the object at this snapshot: first a
``base`` layer (a full read), then ``delta`` layers from later incremental runs (changed records and
tombstones). Reading an object applies the layers in order and, inside a layer, the chunks in ``seq``
order: records upsert by ``Id``, tombstones delete by ``Id``. An incremental's manifest is its parent's
plus new delta layers (or a new base where an object was re-read in full), built by
:func:`next_manifest`. ``parent_manifest_sha256`` chains manifests, so a rolled-back or swapped
manifest is detectable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from orgvault.domain.envelope import canonical_json
from orgvault.domain.models import ChunkKind, ChunkRecord, RunKind
from orgvault.errors import IntegrityError, UnknownFormatVersion

MANIFEST_VERSION = 1


class LayerKind(StrEnum):
    BASE = "base"
    DELTA = "delta"


@dataclass(frozen=True)
class ChunkRef:
    """A chunk as a manifest refers to it. ``run_id`` is the run that wrote it (part of its
    encryption context); ``sha256`` is of the sealed bytes as stored."""

    key: str
    run_id: str
    seq: int
    kind: ChunkKind
    records: int
    sha256: str
    first_id: str = ""
    last_id: str = ""

    @staticmethod
    def from_record(chunk: ChunkRecord) -> ChunkRef:
        return ChunkRef(
            key=chunk.key,
            run_id=chunk.run_id,
            seq=chunk.seq,
            kind=chunk.kind,
            records=chunk.records,
            sha256=chunk.sha256,
            first_id=chunk.first_id,
            last_id=chunk.last_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "run_id": self.run_id,
            "seq": self.seq,
            "kind": str(self.kind),
            "records": self.records,
            "sha256": self.sha256,
            "first_id": self.first_id,
            "last_id": self.last_id,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> ChunkRef:
        return ChunkRef(
            key=d["key"],
            run_id=d["run_id"],
            seq=int(d["seq"]),
            kind=ChunkKind(d["kind"]),
            records=int(d["records"]),
            sha256=d["sha256"],
            first_id=d.get("first_id", ""),
            last_id=d.get("last_id", ""),
        )


@dataclass(frozen=True)
class Layer:
    kind: LayerKind
    run_id: str
    chunks: tuple[ChunkRef, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "run_id": self.run_id, "chunks": [c.to_json() for c in self.chunks]}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Layer:
        return Layer(LayerKind(d["kind"]), d["run_id"], tuple(ChunkRef.from_json(c) for c in d["chunks"]))


@dataclass(frozen=True)
class ObjectEntry:
    """One object at a snapshot. ``fields`` are (name, Salesforce type) pairs in backup order;
    ``watermark`` is the max SystemModstamp read so far; ``records`` the live record count at this
    snapshot; ``fields_hash`` identifies the field list (a change triggers a full re-read)."""

    name: str
    fields: tuple[tuple[str, str], ...]
    watermark: str | None
    records: int
    layers: tuple[Layer, ...]
    fields_hash: str = ""
    strategy: str = ""

    def chunks(self) -> list[ChunkRef]:
        """Every chunk of the object, in application order."""
        return [c for layer in self.layers for c in layer.chunks]

    def to_json(self) -> dict[str, Any]:
        return {
            "fields": [[n, t] for n, t in self.fields],
            "fields_hash": self.fields_hash,
            "layers": [layer.to_json() for layer in self.layers],
            "records": self.records,
            "strategy": self.strategy,
            "watermark": self.watermark,
        }

    @staticmethod
    def from_json(name: str, d: Mapping[str, Any]) -> ObjectEntry:
        return ObjectEntry(
            name=name,
            fields=tuple((str(n), str(t)) for n, t in d["fields"]),
            watermark=d.get("watermark"),
            records=int(d["records"]),
            layers=tuple(Layer.from_json(x) for x in d["layers"]),
            fields_hash=d.get("fields_hash", ""),
            strategy=d.get("strategy", ""),
        )


@dataclass(frozen=True)
class Manifest:
    org: str
    snapshot_id: str
    created_at: str  # ISO 8601 UTC
    run_kind: RunKind
    objects: Mapping[str, ObjectEntry]
    parent_snapshot_id: str | None = None
    parent_manifest_sha256: str | None = None
    salesforce_org_id: str = ""
    version: int = MANIFEST_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)  # forward-compatible annotations

    @property
    def records(self) -> int:
        return sum(o.records for o in self.objects.values())

    def chunk_refs(self) -> list[tuple[str, ChunkRef]]:
        """(object, chunk) for every chunk the manifest references."""
        return [(name, c) for name in sorted(self.objects) for c in self.objects[name].chunks()]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": "orgvault-manifest",
            "version": self.version,
            "org": self.org,
            "snapshot_id": self.snapshot_id,
            "created_at": self.created_at,
            "run_kind": str(self.run_kind),
            "parent_snapshot_id": self.parent_snapshot_id,
            "parent_manifest_sha256": self.parent_manifest_sha256,
            "salesforce_org_id": self.salesforce_org_id,
            "objects": {name: self.objects[name].to_json() for name in sorted(self.objects)},
            "extra": dict(self.extra),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes (sorted keys): equal manifests give equal bytes."""
        return canonical_json(self.to_json_dict())


def manifest_from_bytes(data: bytes) -> Manifest:
    """Parse a manifest's plaintext; checks the format and version first."""
    try:
        d = json.loads(data)
    except ValueError as exc:
        raise IntegrityError("manifest is not valid JSON") from exc
    if not isinstance(d, dict) or d.get("format") != "orgvault-manifest":
        raise IntegrityError("not an orgvault manifest")
    if d.get("version") != MANIFEST_VERSION:
        raise UnknownFormatVersion(f"manifest version {d.get('version')!r}; upgrade orgvault to read it")
    try:
        return Manifest(
            org=d["org"],
            snapshot_id=d["snapshot_id"],
            created_at=d["created_at"],
            run_kind=RunKind(d["run_kind"]),
            objects={n: ObjectEntry.from_json(n, o) for n, o in d["objects"].items()},
            parent_snapshot_id=d.get("parent_snapshot_id"),
            parent_manifest_sha256=d.get("parent_manifest_sha256"),
            salesforce_org_id=d.get("salesforce_org_id", ""),
            version=d["version"],
            extra=d.get("extra") or {},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"manifest is malformed ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class ObjectUpdate:
    """What one run did to one object.

    ``full`` = the object was read in full (a new base layer replaces all previous layers);
    otherwise ``chunks`` form a new delta layer on top of the parent's layers (no layer is added
    when there are no chunks). ``records`` is the live record count after this run (the caller knows
    it, e.g. from :func:`orgvault.services.snapshot_reader.count_records`); ``None`` keeps the
    parent's count plus this run's record chunks minus its tombstones as an estimate — prefer giving it.
    """

    fields: tuple[tuple[str, str], ...]
    chunks: tuple[ChunkRef, ...]
    full: bool
    watermark: str | None = None
    records: int | None = None
    fields_hash: str = ""
    strategy: str = ""


def _as_refs(chunks: Iterable[ChunkRef | ChunkRecord]) -> tuple[ChunkRef, ...]:
    refs = [c if isinstance(c, ChunkRef) else ChunkRef.from_record(c) for c in chunks]
    refs.sort(key=lambda c: c.seq)
    if len({c.seq for c in refs}) != len(refs):
        raise IntegrityError("two chunks of one object share a sequence number")
    return tuple(refs)


def object_update(
    *,
    fields: Iterable[tuple[str, str]],
    chunks: Iterable[ChunkRef | ChunkRecord],
    full: bool,
    watermark: str | None = None,
    records: int | None = None,
    fields_hash: str = "",
    strategy: str = "",
) -> ObjectUpdate:
    """Build an :class:`ObjectUpdate`, accepting catalog ``ChunkRecord``s; chunks are sorted by seq."""
    return ObjectUpdate(
        fields=tuple((str(n), str(t)) for n, t in fields),
        chunks=_as_refs(chunks),
        full=full,
        watermark=watermark,
        records=records,
        fields_hash=fields_hash,
        strategy=strategy,
    )


def next_manifest(
    parent: Manifest | None,
    *,
    org: str,
    snapshot_id: str,
    created_at: str,
    run_kind: RunKind,
    updates: Mapping[str, ObjectUpdate],
    removed: Iterable[str] = (),
    parent_manifest_sha256: str | None = None,
    salesforce_org_id: str = "",
) -> Manifest:
    """The manifest of snapshot ``snapshot_id``: the parent's objects, updated by ``updates``, minus
    ``removed`` objects. Pure and deterministic. Objects not in ``updates`` are carried over unchanged.

    Raises ``ValueError`` if the parent belongs to another org, or if an incremental update names an
    object the parent doesn't have (it must be read in full first)."""
    if parent is not None and parent.org != org:
        raise ValueError("parent manifest belongs to another org")
    if parent is not None and parent_manifest_sha256 is None:
        raise ValueError("a manifest with a parent needs the parent's manifest sha256 (hash chain)")
    objects: dict[str, ObjectEntry] = dict(parent.objects) if parent else {}
    for name in removed:
        objects.pop(name, None)
    for name, up in updates.items():
        prev = objects.get(name)
        if up.full:
            layers: tuple[Layer, ...] = (Layer(LayerKind.BASE, snapshot_id, up.chunks),)
            estimate = sum(c.records for c in up.chunks if c.kind in (ChunkKind.RECORDS, ChunkKind.DELTA))
        else:
            if prev is None:
                raise ValueError(f"object {name} has no base layer; read it in full first")
            layers = prev.layers + ((Layer(LayerKind.DELTA, snapshot_id, up.chunks),) if up.chunks else ())
            estimate = prev.records + sum(
                c.records if c.kind != ChunkKind.TOMBSTONES else -c.records for c in up.chunks
            )
        objects[name] = ObjectEntry(
            name=name,
            fields=up.fields or (prev.fields if prev else ()),
            watermark=up.watermark if up.watermark is not None else (prev.watermark if prev else None),
            records=up.records if up.records is not None else max(estimate, 0),
            layers=layers,
            fields_hash=up.fields_hash or (prev.fields_hash if prev and not up.full else ""),
            strategy=up.strategy or (prev.strategy if prev else ""),
        )
    return Manifest(
        org=org,
        snapshot_id=snapshot_id,
        created_at=created_at,
        run_kind=run_kind,
        objects=objects,
        parent_snapshot_id=parent.snapshot_id if parent else None,
        parent_manifest_sha256=parent_manifest_sha256 if parent else None,
        salesforce_org_id=salesforce_org_id or (parent.salesforce_org_id if parent else ""),
    )


def with_counts(manifest: Manifest, counts: Mapping[str, int]) -> Manifest:
    """The same manifest with the record counts of some objects replaced."""
    objects = {n: (replace(o, records=counts[n]) if n in counts else o) for n, o in manifest.objects.items()}
    return replace(manifest, objects=objects)
