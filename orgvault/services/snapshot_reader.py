"""Reading a snapshot: objects, their records at that point in time, and a full verification.

``SnapshotReader(vault, manifest).iter_records(object)`` applies the object's layers (docs/format.md,
"Manifest"): the delta layers (and base-layer tombstones) are read first into a map ``Id -> record or
deleted`` (memory: the size of the changes only), then the base layer's record chunks are streamed,
each record replaced by its latest version or dropped if deleted; changed records that were not in the
base come last. Every chunk is authenticated before any of its records are used.

``verify()`` re-reads every chunk and every referenced file body exactly once, authenticates each,
checks hashes and record counts, and returns a :class:`VerifyReport` naming every bad object, chunk
and file instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orgvault.domain.envelope import EnvelopeError, Reason
from orgvault.domain.layout import file_refs
from orgvault.domain.manifest import ChunkRef, LayerKind, Manifest, ObjectEntry
from orgvault.domain.models import ChunkKind, SnapshotRecord
from orgvault.errors import (
    IntegrityError,
    KeyUnavailable,
    ObjectNotFound,
    OrgVaultError,
    UnknownFormatVersion,
)
from orgvault.services.vault import Vault

Record = dict[str, Any]


class ProblemKind(StrEnum):
    MISSING = "missing"  # the object the manifest references is not in the vault
    TAMPERED = "tampered"  # failed authentication (a flipped byte, an edited header, swapped segments)
    TRUNCATED = "truncated"  # cut short
    MISPLACED = "misplaced"  # authentic but sealed for another org/snapshot/object/sequence (moved, swapped)
    HASH_MISMATCH = "hash-mismatch"  # authentic and in place, but not the bytes recorded
    COUNT_MISMATCH = "count-mismatch"  # records do not add up to what the manifest says
    KEY_UNAVAILABLE = "key-unavailable"  # the data key could not be unwrapped
    UNKNOWN_VERSION = "unknown-version"  # written by a newer orgvault
    MALFORMED = "malformed"  # not an orgvault object / payload does not decode
    FILE_MISSING = "file-missing"
    FILE_BAD = "file-bad"
    MANIFEST = "manifest"  # the manifest itself failed (hash chain, tampering, missing)


_REASONS = {
    Reason.TAMPERED: ProblemKind.TAMPERED,
    Reason.TRUNCATED: ProblemKind.TRUNCATED,
    Reason.MISPLACED: ProblemKind.MISPLACED,
    Reason.HASH_MISMATCH: ProblemKind.HASH_MISMATCH,
    Reason.NOT_AN_ENVELOPE: ProblemKind.MALFORMED,
    Reason.WRONG_KEY: ProblemKind.KEY_UNAVAILABLE,
    Reason.CONTENT_MISMATCH: ProblemKind.FILE_BAD,
}


def classify(exc: Exception) -> ProblemKind:
    """The problem kind for an error raised while reading a sealed object."""
    if isinstance(exc, EnvelopeError):
        return _REASONS.get(exc.reason, ProblemKind.TAMPERED)
    if isinstance(exc, ObjectNotFound):
        return ProblemKind.MISSING
    if isinstance(exc, KeyUnavailable):
        return ProblemKind.KEY_UNAVAILABLE
    if isinstance(exc, UnknownFormatVersion):
        return ProblemKind.UNKNOWN_VERSION
    return ProblemKind.MALFORMED


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    object_name: str | None  # None for the manifest or a file
    key: str | None  # the vault key of the bad chunk/file/manifest
    detail: str
    seq: int | None = None

    def __str__(self) -> str:
        where = " ".join(
            p
            for p in (
                self.object_name or "",
                f"seq {self.seq}" if self.seq is not None else "",
                self.key or "",
            )
            if p
        )
        return f"{self.kind}: {where}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    org: str
    snapshot_id: str
    objects: int = 0
    chunks: int = 0
    records: int = 0
    files: int = 0
    file_bytes: int = 0
    problems: tuple[Problem, ...] = ()
    bad_objects: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


class SnapshotReader:
    """Reads one snapshot. Construct from a manifest already checked against the catalog (see
    :meth:`open`, which reads it with the catalog's hash)."""

    def __init__(self, vault: Vault, manifest: Manifest) -> None:
        self.vault = vault
        self.manifest = manifest

    @classmethod
    def open(cls, vault: Vault, snapshot: SnapshotRecord) -> SnapshotReader:
        """Read and check the snapshot's manifest (hash from the catalog record), then a reader."""
        return cls(vault, vault.read_snapshot_manifest(snapshot))

    def objects(self) -> list[str]:
        """Object names at this snapshot, sorted."""
        return sorted(self.manifest.objects)

    def entry(self, object_name: str) -> ObjectEntry:
        try:
            return self.manifest.objects[object_name]
        except KeyError:
            raise KeyError(f"object {object_name} is not in snapshot {self.manifest.snapshot_id}") from None

    def iter_records(self, object_name: str) -> Iterator[Record]:
        """The object's live records at this snapshot (each ``Id`` once). Raises on the first bad
        chunk (``IntegrityError`` subclasses, ``ObjectNotFound``, ``KeyUnavailable``)."""
        return apply_layers(self.vault, self.manifest.org, self.entry(object_name))

    def count(self, object_name: str) -> int:
        return sum(1 for _ in self.iter_records(object_name))

    def verify(self, *, check_files: bool = True) -> VerifyReport:
        """Re-read and authenticate every chunk (once) and every referenced file body; check record
        counts. Never raises for a bad chunk or file: each becomes a :class:`Problem`."""
        org = self.manifest.org
        problems: list[Problem] = []
        bad_objects: set[str] = set()
        chunks = records = 0
        files: dict[str, int] = {}
        for name in self.objects():
            entry = self.manifest.objects[name]
            object_problems: list[Problem] = []

            def on_error(
                ref: ChunkRef, exc: Exception, name: str = name, sink: list[Problem] = object_problems
            ) -> None:
                sink.append(Problem(classify(exc), name, ref.key, str(exc), ref.seq))

            def on_chunk(ref: ChunkRef, rows: list[Record]) -> None:
                nonlocal chunks
                chunks += 1
                if ref.kind != ChunkKind.TOMBSTONES:
                    for row in rows:
                        for fref in file_refs(row):
                            files.setdefault(fref.content_id, fref.size)

            count = sum(1 for _ in apply_layers(self.vault, org, entry, on_chunk=on_chunk, on_error=on_error))
            records += count
            if not object_problems and count != entry.records:
                object_problems.append(
                    Problem(
                        ProblemKind.COUNT_MISMATCH,
                        name,
                        None,
                        f"{count} records read, the manifest says {entry.records}",
                    )
                )
            if object_problems:
                bad_objects.add(name)
                problems.extend(object_problems)
        file_bytes = 0
        if check_files:
            for content_id in sorted(files):
                try:
                    file_bytes += self.vault.verify_file(org, content_id, expected_size=files[content_id])
                except (OrgVaultError, KeyError) as exc:
                    kind = classify(exc)
                    problems.append(
                        Problem(
                            ProblemKind.FILE_MISSING if kind == ProblemKind.MISSING else ProblemKind.FILE_BAD,
                            None,
                            content_id,
                            str(exc),
                        )
                    )
        return VerifyReport(
            org=org,
            snapshot_id=self.manifest.snapshot_id,
            objects=len(self.manifest.objects),
            chunks=chunks,
            records=records,
            files=len(files),
            file_bytes=file_bytes,
            problems=tuple(problems),
            bad_objects=tuple(sorted(bad_objects)),
        )


def verify_snapshot(vault: Vault, snapshot: SnapshotRecord, *, check_files: bool = True) -> VerifyReport:
    """Verify a committed snapshot, starting with its manifest (hash from the catalog record). A bad
    manifest gives a report with one MANIFEST problem (nothing else can be checked)."""
    try:
        reader = SnapshotReader.open(vault, snapshot)
    except OrgVaultError as exc:
        return VerifyReport(
            org=snapshot.org,
            snapshot_id=snapshot.snapshot_id,
            problems=(Problem(ProblemKind.MANIFEST, None, snapshot.manifest_key, f"{classify(exc)}: {exc}"),),
        )
    return reader.verify(check_files=check_files)


def count_records(vault: Vault, org: str, entry: ObjectEntry) -> int:
    """The live record count of an object entry (for building a manifest's ``records``)."""
    return sum(1 for _ in apply_layers(vault, org, entry))


def apply_layers(
    vault: Vault,
    org: str,
    entry: ObjectEntry,
    *,
    on_chunk: Callable[[ChunkRef, list[Record]], None] | None = None,
    on_error: Callable[[ChunkRef, Exception], None] | None = None,
) -> Iterator[Record]:
    """Yield the live records of ``entry``: base records, replaced by their latest version or
    dropped if deleted, then records added by delta layers. Each chunk is read exactly once.

    With ``on_error``, a chunk that fails to read is reported there and treated as empty; without it
    the error propagates. ``on_chunk`` sees every chunk's records as read (IDS chunks included)."""

    def read(ref: ChunkRef) -> list[Record]:
        try:
            rows = list(vault.read_chunk(org, entry.name, ref))
        except (IntegrityError, ObjectNotFound, KeyUnavailable, UnknownFormatVersion) as exc:
            if on_error is None:
                raise
            on_error(ref, exc)
            return []
        if on_chunk is not None:
            on_chunk(ref, rows)
        return rows

    if not entry.layers:
        return
    first = entry.layers[0]
    if first.kind == LayerKind.BASE:
        base = sorted(first.chunks, key=lambda c: c.seq)
        later = entry.layers[1:]
    else:  # no base layer: everything is a change on top of nothing
        base = []
        later = entry.layers
    latest: dict[str, Record | None] = {}
    for ref in base:
        if ref.kind == ChunkKind.TOMBSTONES:
            for row in read(ref):
                latest[row["Id"]] = None
    for layer in later:
        for ref in sorted(layer.chunks, key=lambda c: c.seq):
            if ref.kind == ChunkKind.IDS:
                read(ref)
                continue
            deleting = ref.kind == ChunkKind.TOMBSTONES
            for row in read(ref):
                latest[row["Id"]] = None if deleting else row
    emitted: set[str] = set()
    for ref in base:
        if ref.kind == ChunkKind.TOMBSTONES:
            continue
        rows = read(ref)
        if ref.kind == ChunkKind.IDS:
            continue
        for row in rows:
            rid = row.get("Id")
            if rid in latest:
                current = latest[rid]
                if current is not None and rid not in emitted:
                    emitted.add(rid)
                    yield current
            else:
                yield row
    for rid, current in latest.items():
        if current is not None and rid not in emitted:
            yield current
