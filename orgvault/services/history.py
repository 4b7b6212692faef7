"""Every version of one record across an org's snapshots, with what changed between versions.

Contract: :func:`record_history` walks the org's committed snapshots oldest first and finds the
record in each through the id indexes (see :mod:`orgvault.services.browse`), so the cost is a few
small index reads per snapshot plus one chunk per distinct version — never a whole object. It
returns one :class:`Version` per change of state: first seen, each change of data fields
(bookkeeping fields such as SystemModstamp alone do not make a version), deletion, re-appearance.
Decrypted values stay in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orgvault.domain.restore_plan import changed_fields, data_changes
from orgvault.errors import ConfigError
from orgvault.services.browse import Snapshots


@dataclass(frozen=True)
class Version:
    """The record as of ``snapshot_id`` (and every later snapshot up to ``until_snapshot_id``).
    ``state``: ``created`` (first seen), ``changed``, ``deleted``, ``restored`` (seen again after a
    deletion). ``changes`` maps field -> (before, after) against the previous version."""

    snapshot_id: str
    created_at: datetime
    state: str
    record: dict[str, Any] | None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    until_snapshot_id: str = ""


@dataclass(frozen=True)
class History:
    org: str
    object_name: str
    record_id: str
    versions: list[Version]
    snapshots_searched: int
    chunks_decrypted: int


def record_history(
    snapshots: Snapshots, org: str, record_id: str, *, object_name: str | None = None, key_ref: str = ""
) -> History:
    snaps = snapshots.catalog.list_snapshots(org)
    if not snaps:
        raise ConfigError(f"{org} has no snapshot yet; run `orgvault backup {org}` first")
    if object_name is None:
        object_name = snapshots.object_for_id(snapshots.manifest(snaps[-1]), record_id)
    before = snapshots.stats.data_chunks_decrypted
    versions: list[Version] = []
    prev: dict[str, Any] | None = None
    prev_state = "absent"
    last_key = None
    for snap in snaps:
        manifest = snapshots.manifest(snap)
        if not any(n.lower() == object_name.lower() for n in manifest.objects):
            continue
        lk = snapshots.lookup(org, key_ref, manifest, object_name, record_id)
        object_name = lk.object_name
        if lk.state == "live" and lk.record is not None:
            if prev is None:
                state = "created" if prev_state == "absent" else "restored"
                versions.append(Version(snap.snapshot_id, snap.created_at, state, lk.record))
            elif lk.chunk_key != last_key:
                changes = data_changes(changed_fields(prev, lk.record))
                if changes:
                    versions.append(Version(snap.snapshot_id, snap.created_at, "changed", lk.record, changes))
            prev, prev_state, last_key = lk.record, "live", lk.chunk_key
        elif lk.state == "deleted" and prev is not None:
            versions.append(Version(snap.snapshot_id, snap.created_at, "deleted", None))
            prev, prev_state, last_key = None, "deleted", None
        if versions:
            versions[-1] = _extend(versions[-1], snap.snapshot_id)
    return History(
        org, object_name, record_id, versions, len(snaps), snapshots.stats.data_chunks_decrypted - before
    )


def _extend(v: Version, snapshot_id: str) -> Version:
    return Version(v.snapshot_id, v.created_at, v.state, v.record, v.changes, snapshot_id)
