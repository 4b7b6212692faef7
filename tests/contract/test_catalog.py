"""Catalog contract: every adapter (see conftest.py) must pass all of these."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest

from orgvault.domain.models import (
    AuthMethod,
    Checkpoint,
    ChunkKind,
    ChunkRecord,
    FileRecord,
    ObjectState,
    OrgConnection,
    Run,
    RunKind,
    RunStatus,
    SnapshotRecord,
)
from orgvault.errors import (
    ConcurrentCommit,
    IntegrityError,
    RunInProgress,
    RunNotFound,
    SnapshotNotFound,
    UnknownOrg,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def org(name: str = "acme", **kw) -> OrgConnection:
    return OrgConnection(
        name=name,
        instance_url="https://acme.my.salesforce.com",
        auth_method=AuthMethod.JWT,
        created_at=T0,
        settings={"objects": ["Account"], "nested": {"n": 1}},
        **kw,
    )


def chunk(seq: int, *, obj: str = "Account", run_id: str = "r1", key: str | None = None, **kw) -> ChunkRecord:
    return ChunkRecord(
        org="acme",
        run_id=run_id,
        object_name=obj,
        seq=seq,
        kind=kw.pop("kind", ChunkKind.RECORDS),
        key=key or f"orgs/acme/snapshots/{run_id}/objects/{obj}/{seq:06d}-records-aa.ovc",
        records=10,
        plain_bytes=1000,
        stored_bytes=400,
        sha256="ab" * 32,
        first_id="001A",
        last_id="001Z",
        **kw,
    )


def checkpoint(next_seq: int, *, obj: str = "Account", run_id: str = "r1") -> Checkpoint:
    return Checkpoint(
        org="acme",
        run_id=run_id,
        object_name=obj,
        state=ObjectState.IN_PROGRESS,
        strategy="bulk",
        cursor={"locator": f"L{next_seq}", "job": "750x"},
        next_seq=next_seq,
        records=10 * next_seq,
        watermark="2026-01-01T00:00:00.000+0000",
        updated_at=T0,
    )


def snapshot(sid: str, *, parent: str | None = None, created: datetime = T0, **kw) -> SnapshotRecord:
    return SnapshotRecord(
        org="acme",
        snapshot_id=sid,
        created_at=created,
        kind=RunKind.FULL if parent is None else RunKind.INCREMENTAL,
        manifest_key=f"orgs/acme/manifests/{sid}-aa.ovm",
        manifest_sha256="cd" * 32,
        parent_id=parent,
        objects=3,
        records=30,
        **kw,
    )


# --- orgs ------------------------------------------------------------------------------------


def test_orgs_roundtrip(catalog):
    catalog.put_org(org())
    catalog.put_org(org("beta"))
    assert catalog.get_org("acme") == org()
    assert [o.name for o in catalog.list_orgs()] == ["acme", "beta"]
    catalog.put_org(org(key_ref="local:acme"))
    assert catalog.get_org("acme").key_ref == "local:acme"
    catalog.delete_org("beta")
    with pytest.raises(UnknownOrg):
        catalog.get_org("beta")
    assert [o.name for o in catalog.list_orgs()] == ["acme"]


def test_unknown_org(catalog):
    with pytest.raises(UnknownOrg):
        catalog.get_org("nobody")


# --- lock ------------------------------------------------------------------------------------


def test_lock_acquire_conflict_release(catalog):
    lock = catalog.acquire_lock("acme", "host:1", now=T0, ttl_seconds=60)
    assert (lock.owner, lock.expires_at) == ("host:1", T0 + timedelta(seconds=60))
    assert catalog.get_lock("acme").owner == "host:1"
    with pytest.raises(RunInProgress) as info:
        catalog.acquire_lock("acme", "host:2", now=T0 + timedelta(seconds=30), ttl_seconds=60)
    assert "host:1" in str(info.value)
    catalog.release_lock("acme", "host:2")  # not the holder: nothing happens
    assert catalog.get_lock("acme").owner == "host:1"
    catalog.release_lock("acme", "host:1")
    assert catalog.get_lock("acme") is None
    catalog.acquire_lock("acme", "host:2", now=T0, ttl_seconds=60)
    assert catalog.get_lock("acme").owner == "host:2"


def test_lock_refresh_by_owner(catalog):
    catalog.acquire_lock("acme", "host:1", now=T0, ttl_seconds=60)
    lock = catalog.acquire_lock("acme", "host:1", now=T0 + timedelta(seconds=50), ttl_seconds=60)
    assert lock.expires_at == T0 + timedelta(seconds=110)
    assert catalog.get_lock("acme").expires_at == T0 + timedelta(seconds=110)


def test_expired_lock_can_be_taken(catalog):
    catalog.acquire_lock("acme", "host:1", now=T0, ttl_seconds=60)
    lock = catalog.acquire_lock("acme", "host:2", now=T0 + timedelta(seconds=61), ttl_seconds=60)
    assert lock.owner == "host:2"
    assert catalog.get_lock("acme").owner == "host:2"


def test_force_takes_a_live_lock(catalog):
    catalog.acquire_lock("acme", "host:1", now=T0, ttl_seconds=600)
    catalog.acquire_lock("acme", "host:2", now=T0, ttl_seconds=600, force=True)
    assert catalog.get_lock("acme").owner == "host:2"


def test_locks_are_per_org(catalog):
    catalog.acquire_lock("acme", "host:1", now=T0, ttl_seconds=60)
    catalog.acquire_lock("beta", "host:2", now=T0, ttl_seconds=60)
    assert catalog.get_lock("beta").owner == "host:2"


def test_lock_race_has_one_winner(catalog):
    winners: list[str] = []
    errors: list[Exception] = []

    def take(owner: str) -> None:
        try:
            catalog.acquire_lock("acme", owner, now=T0, ttl_seconds=60)
            winners.append(owner)
        except RunInProgress as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(f"host:{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(errors) == 5
    assert catalog.get_lock("acme").owner == winners[0]


# --- runs, checkpoints --------------------------------------------------------------------------


def test_runs(catalog):
    r2 = Run(
        "acme", "r2", RunKind.INCREMENTAL, RunStatus.RUNNING, T0 + timedelta(hours=1), parent_snapshot_id="r1"
    )
    r1 = Run("acme", "r1", RunKind.FULL, RunStatus.RUNNING, T0, stats={"records": 5})
    catalog.put_run(r2)
    catalog.put_run(r1)
    catalog.put_run(Run("beta", "r9", RunKind.FULL, RunStatus.RUNNING, T0))
    assert catalog.get_run("acme", "r1") == r1
    assert [r.run_id for r in catalog.list_runs("acme")] == ["r1", "r2"]
    done = dataclasses.replace(r1, status=RunStatus.COMPLETED, finished_at=T0 + timedelta(minutes=5))
    catalog.put_run(done)
    assert catalog.get_run("acme", "r1") == done
    with pytest.raises(RunNotFound):
        catalog.get_run("acme", "nope")


def test_checkpoints(catalog):
    catalog.put_checkpoint(checkpoint(0, obj="Contact"))
    catalog.put_checkpoint(checkpoint(0))
    catalog.put_checkpoint(checkpoint(3))
    catalog.put_checkpoint(checkpoint(0, run_id="r2"))
    cps = catalog.list_checkpoints("acme", "r1")
    assert [c.object_name for c in cps] == ["Account", "Contact"]
    assert cps[0] == checkpoint(3)


# --- chunks -------------------------------------------------------------------------------------


def test_record_chunk_moves_checkpoint(catalog):
    catalog.put_checkpoint(checkpoint(0))
    catalog.record_chunk(chunk(0), checkpoint(1))
    assert catalog.list_chunks("acme", "r1") == [chunk(0)]
    assert catalog.list_checkpoints("acme", "r1") == [checkpoint(1)]


def test_record_chunk_repeat_is_a_noop(catalog):
    catalog.record_chunk(chunk(0), checkpoint(1))
    catalog.record_chunk(chunk(1), checkpoint(2))
    catalog.record_chunk(chunk(0), checkpoint(1))  # a resumed step repeats an old call
    assert catalog.list_chunks("acme", "r1") == [chunk(0), chunk(1)]
    assert catalog.list_checkpoints("acme", "r1")[0].next_seq == 2


def test_conflicting_duplicate_chunk_is_refused_atomically(catalog):
    catalog.record_chunk(chunk(0), checkpoint(1))
    other = chunk(0, key="orgs/acme/snapshots/r1/objects/Account/000000-records-bb.ovc")
    with pytest.raises(IntegrityError):
        catalog.record_chunk(other, checkpoint(7))
    assert catalog.list_chunks("acme", "r1") == [chunk(0)]
    assert catalog.list_checkpoints("acme", "r1") == [checkpoint(1)]


def test_list_chunks_order_and_filter(catalog):
    for seq in (2, 0, 10, 1):
        catalog.record_chunk(chunk(seq), checkpoint(seq + 1))
    catalog.record_chunk(chunk(0, obj="Contact", kind=ChunkKind.TOMBSTONES), checkpoint(1, obj="Contact"))
    catalog.record_chunk(chunk(0, obj="Aardvark__c"), checkpoint(1, obj="Aardvark__c"))
    catalog.record_chunk(chunk(0, run_id="r2"), checkpoint(1, run_id="r2"))
    got = [(c.object_name, c.seq) for c in catalog.list_chunks("acme", "r1")]
    assert got == [
        ("Aardvark__c", 0),
        ("Account", 0),
        ("Account", 1),
        ("Account", 2),
        ("Account", 10),
        ("Contact", 0),
    ]
    assert [c.seq for c in catalog.list_chunks("acme", "r1", "Account")] == [0, 1, 2, 10]
    assert catalog.list_chunks("acme", "r1", "Contact")[0].kind == ChunkKind.TOMBSTONES
    assert catalog.list_chunks("acme", "r3") == []


def test_many_chunks_are_all_listed(catalog):
    for seq in range(120):
        catalog.record_chunk(chunk(seq), checkpoint(seq + 1))
    assert [c.seq for c in catalog.list_chunks("acme", "r1", "Account")] == list(range(120))


# --- files --------------------------------------------------------------------------------------


def test_files(catalog):
    f1 = FileRecord(
        "acme", "ContentVersion/068A/VersionData", "aa" * 32, "orgs/acme/files/x.ovf", 10, 50, "ef" * 32, "s1"
    )
    f2 = FileRecord("acme", "Attachment/00PA/Body", "aa" * 32, "orgs/acme/files/x.ovf", 10, 50, "")
    catalog.put_file(f1)
    catalog.put_file(f2)
    assert catalog.get_file("acme", f1.source) == f1
    assert catalog.get_file("acme", "ContentVersion/068B/VersionData") is None
    assert catalog.get_file("beta", f1.source) is None
    assert [f.source for f in catalog.list_files("acme")] == sorted([f1.source, f2.source])
    f1b = dataclasses.replace(f1, source_stamp="s2")
    catalog.put_file(f1b)
    assert catalog.get_file("acme", f1.source) == f1b


# --- snapshots ----------------------------------------------------------------------------------


def test_commit_first_snapshot(catalog):
    assert catalog.head_snapshot("acme") is None
    s1 = snapshot("r1")
    catalog.commit_snapshot(s1, expected_head=None)
    assert catalog.head_snapshot("acme") == s1
    assert catalog.get_snapshot("acme", "r1") == s1


def test_commit_is_compare_and_set(catalog):
    catalog.commit_snapshot(snapshot("r1"), expected_head=None)
    with pytest.raises(ConcurrentCommit):
        catalog.commit_snapshot(snapshot("r2", parent=None), expected_head=None)
    with pytest.raises(ConcurrentCommit):
        catalog.commit_snapshot(snapshot("r2", parent="r0"), expected_head="r0")
    assert catalog.head_snapshot("acme").snapshot_id == "r1"
    with pytest.raises(SnapshotNotFound):
        catalog.get_snapshot("acme", "r2")
    s2 = snapshot("r2", parent="r1", created=T0 + timedelta(days=1))
    catalog.commit_snapshot(s2, expected_head="r1")
    assert catalog.head_snapshot("acme") == s2


def test_commit_same_record_again_is_idempotent(catalog):
    s1 = snapshot("r1")
    catalog.commit_snapshot(s1, expected_head=None)
    catalog.commit_snapshot(s1, expected_head=None)  # a retried finalize
    assert [s.snapshot_id for s in catalog.list_snapshots("acme")] == ["r1"]


def test_concurrent_commits_have_one_winner(catalog):
    catalog.commit_snapshot(snapshot("r1"), expected_head=None)
    results: list[str] = []

    def commit(sid: str) -> None:
        try:
            catalog.commit_snapshot(
                snapshot(sid, parent="r1", created=T0 + timedelta(days=1)), expected_head="r1"
            )
            results.append(sid)
        except ConcurrentCommit:
            results.append("lost")

    threads = [threading.Thread(target=commit, args=(f"r2-{i}",)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r != "lost"]
    assert len(winners) == 1
    assert catalog.head_snapshot("acme").snapshot_id == winners[0]


def test_list_snapshots_oldest_first_and_per_org(catalog):
    catalog.commit_snapshot(snapshot("r1"), expected_head=None)
    catalog.commit_snapshot(snapshot("r2", parent="r1", created=T0 + timedelta(days=1)), expected_head="r1")
    catalog.commit_snapshot(snapshot("r3", parent="r2", created=T0 + timedelta(days=2)), expected_head="r2")
    assert [s.snapshot_id for s in catalog.list_snapshots("acme")] == ["r1", "r2", "r3"]
    assert catalog.list_snapshots("beta") == []
    assert catalog.head_snapshot("beta") is None
    with pytest.raises(SnapshotNotFound):
        catalog.get_snapshot("beta", "r1")
