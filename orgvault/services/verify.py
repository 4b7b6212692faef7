"""``verify``: re-read a snapshot, authenticate everything, and check the manifest hash chain.

Contract of :func:`verify_snapshot`: never raises for damage it finds — every bad manifest, object,
chunk or file is a named problem in the returned :class:`SnapshotVerification` (``ok`` is False).
It raises only for bad input (``UnknownOrg``, ``SnapshotNotFound``). Reads only; changes nothing.

Checks, in order:

1. the snapshot's manifest: its sealed bytes hash to what the catalog recorded (a replaced or
   rolled-back manifest fails), it is sealed for this org and snapshot, and it names them inside;
2. the hash chain: walking parent by parent, each manifest names the parent snapshot the catalog
   names and carries the sha256 of the parent's manifest as the catalog recorded it;
3. every chunk and file body the snapshot references (``SnapshotReader.verify``): authentic, in
   its place (org, snapshot, object, sequence), the recorded bytes, the recorded counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orgvault.domain.models import SnapshotRecord
from orgvault.errors import OrgVaultError, SnapshotNotFound
from orgvault.ports import Catalog
from orgvault.services.snapshot_reader import Problem, ProblemKind, VerifyReport, classify
from orgvault.services.snapshot_reader import verify_snapshot as verify_contents


@dataclass(frozen=True)
class SnapshotVerification:
    org: str
    snapshot_id: str
    contents: VerifyReport
    chain: tuple[Problem, ...] = field(default=())
    chain_length: int = 0

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.chain + self.contents.problems

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_objects(self) -> tuple[str, ...]:
        return self.contents.bad_objects

    def summary(self) -> str:
        c = self.contents
        head = (
            f"snapshot {self.snapshot_id} of {self.org}: {c.objects} objects, {c.chunks} chunks, "
            f"{c.records:,} records, {c.files} files ({c.file_bytes:,} bytes), chain of {self.chain_length}"
        )
        if self.ok:
            return head + ": OK"
        bad = ", ".join(self.bad_objects) or "manifest"
        return head + f": FAILED — {len(self.problems)} problem(s) in {bad}"

    def to_json(self) -> dict[str, Any]:
        c = self.contents
        return {
            "org": self.org,
            "snapshot_id": self.snapshot_id,
            "ok": self.ok,
            "objects": c.objects,
            "chunks": c.chunks,
            "records": c.records,
            "files": c.files,
            "file_bytes": c.file_bytes,
            "chain_length": self.chain_length,
            "bad_objects": list(self.bad_objects),
            "problems": [
                {"kind": str(p.kind), "object": p.object_name, "seq": p.seq, "key": p.key, "detail": p.detail}
                for p in self.problems
            ],
        }


def check_chain(catalog: Catalog, vault: Any, snapshot: SnapshotRecord) -> tuple[tuple[Problem, ...], int]:
    """Walk from ``snapshot`` to the first snapshot, checking each manifest against the catalog and
    its parent link. Returns the problems and how many snapshots were walked."""
    problems: list[Problem] = []
    current: SnapshotRecord | None = snapshot
    seen: set[str] = set()
    length = 0
    while current is not None and current.snapshot_id not in seen:
        seen.add(current.snapshot_id)
        length += 1
        try:
            manifest = vault.read_snapshot_manifest(current)
        except OrgVaultError as exc:
            problems.append(
                Problem(
                    ProblemKind.MANIFEST,
                    None,
                    current.manifest_key,
                    f"snapshot {current.snapshot_id}: {classify(exc)}: {exc}",
                )
            )
            break
        if manifest.parent_snapshot_id != current.parent_id:
            problems.append(
                Problem(
                    ProblemKind.MANIFEST,
                    None,
                    current.manifest_key,
                    f"snapshot {current.snapshot_id}: the manifest names parent "
                    f"{manifest.parent_snapshot_id}, the catalog {current.parent_id}",
                )
            )
            break
        if current.parent_id is None:
            break
        try:
            parent = catalog.get_snapshot(current.org, current.parent_id)
        except SnapshotNotFound:
            problems.append(
                Problem(
                    ProblemKind.MANIFEST,
                    None,
                    current.manifest_key,
                    f"snapshot {current.snapshot_id}: its parent {current.parent_id} is not in the catalog",
                )
            )
            break
        if manifest.parent_manifest_sha256 != parent.manifest_sha256:
            problems.append(
                Problem(
                    ProblemKind.MANIFEST,
                    None,
                    current.manifest_key,
                    f"snapshot {current.snapshot_id}: the hash chain is broken (the parent "
                    f"manifest {parent.snapshot_id} is not the one this snapshot was built on)",
                )
            )
            break
        current = parent
    return tuple(problems), length


def verify_snapshot(
    catalog: Catalog, vault: Any, org: str, snapshot_id: str | None = None, *, check_files: bool = True
) -> SnapshotVerification:
    """Verify ``snapshot_id`` (default: the org's newest snapshot). Raises ``UnknownOrg`` or
    ``SnapshotNotFound`` for bad input; damage is reported, not raised."""
    catalog.get_org(org)
    if snapshot_id is None:
        snapshot = catalog.head_snapshot(org)
        if snapshot is None:
            raise SnapshotNotFound(f"org {org!r} has no snapshot yet; run `orgvault backup {org}` first")
    else:
        snapshot = catalog.get_snapshot(org, snapshot_id)
    chain, length = check_chain(catalog, vault, snapshot)
    contents = verify_contents(vault, snapshot, check_files=check_files)
    return SnapshotVerification(
        org=org, snapshot_id=snapshot.snapshot_id, contents=contents, chain=chain, chain_length=length
    )
