"""Step-level properties of the backup engine the cloud relies on: the extract step never decrypts
(its role may only GenerateDataKey, plus unwrap the content-id key), chunks get their id index when
written (a lookup after a backup decrypts few chunks), and extract steps keep the run lock alive."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orgvault.domain.models import RunKind
from orgvault.errors import RunInProgress
from orgvault.services.backup import BackupService, StepStatus
from orgvault.services.browse import Snapshots, index_key
from orgvault.services.vault import Vault
from tests.integration.test_backup_support import ORG, assert_identical, change_org, connect, make_app


class DecryptForbidden(AssertionError):
    pass


class ExtractKeys:
    """What the extract Lambda's role allows: generate data keys; decrypt only the content-id key."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.content_id_unwraps = 0
        self.generated = 0

    def create_org_key(self, org: str) -> str:
        return self.inner.create_org_key(org)

    def generate_data_key(self, key_ref: str, context: Mapping[str, str]) -> Any:
        self.generated += 1
        return self.inner.generate_data_key(key_ref, context)

    def decrypt_data_key(self, key_ref: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        if dict(context).get("purpose") != "content-id":
            raise DecryptForbidden(f"the extract step decrypted a data key with context {dict(context)}")
        self.content_id_unwraps += 1
        return self.inner.decrypt_data_key(key_ref, wrapped, context)


def _run_like_step_functions(app: Any, *, full: bool = False) -> tuple[Any, ExtractKeys, dict[str, int]]:
    """start (may decrypt) → extract steps on a service whose vault cannot decrypt → finalize."""
    plan = app.backup_service(owner="exec-1").start_run(ORG, full=full)
    keys = ExtractKeys(app.keys)
    extract = BackupService(
        catalog=app.catalog,
        vault=Vault(app.store, keys),
        source_factory=app.source_for,
        settings=app.settings.backup,
        owner=f"extract:{plan.run_id}",
    )
    totals = {"records": 0, "steps": 0}
    for obj in plan.objects:
        while True:
            res = extract.extract_step(ORG, plan.run_id, obj, time_budget_s=0.05)
            totals["records"] += res.records
            totals["steps"] += 1
            if res.status is StepStatus.DONE:
                break
    snap = app.backup_service(owner="exec-1").finalize_run(ORG, plan.run_id)
    return snap, keys, totals


def test_extract_never_decrypts_full_and_incremental_with_reconciliation(tmp_path, fresh_emulator):
    emu = fresh_emulator(scale=150, seed=21)
    app = make_app(tmp_path, reconcile_every=1)
    connect(app, emu)
    full, keys, totals = _run_like_step_functions(app)
    assert full.kind is RunKind.FULL and totals["records"] > 100
    assert keys.generated > 0 and totals["steps"] >= full.objects
    assert_identical(app, emu)

    changes = change_org(emu.org, seed=5)  # updates, deletes, new files, undeletes and purges
    inc, keys, _ = _run_like_step_functions(app)
    assert inc.kind is RunKind.INCREMENTAL and inc.parent_id == full.snapshot_id
    assert app.catalog.get_run(ORG, inc.snapshot_id).stats["reconciled"] is True
    assert keys.content_id_unwraps == 1, "new file bodies were de-duplicated with the content-id key"
    # the purged records (only reconciliation can see them) are gone from the snapshot
    assert any(changes["second"]["purged"].values())
    assert_identical(app, emu)


def test_guard_catches_a_decrypting_extract(tmp_path):
    """The guard itself: any data-key context without purpose=content-id is refused."""
    keys = ExtractKeys(object())
    with pytest.raises(DecryptForbidden):
        keys.decrypt_data_key("k", b"x", {"org": ORG, "object": "Account"})


def test_lookup_after_a_fresh_backup_reads_indexes_written_by_the_backup(tmp_path, fresh_emulator):
    emu = fresh_emulator(scale=150, seed=22)
    app = make_app(
        tmp_path, chunk_records=20, source_options={"bulk_page_records": 20, "rest_batch_size": 20}
    )
    connect(app, emu)
    snap = app.backup_service().run_backup(ORG).snapshot
    conn = app.catalog.get_org(ORG)
    snaps = Snapshots(app.catalog, app.vault, write_indexes=False)
    m = snaps.manifest(snap)
    for entry in m.objects.values():  # every data chunk has its index, written by the backup
        for ref in (r for layer in entry.layers for r in layer.chunks):
            assert app.store.exists(index_key(ORG, ref.sha256)), ref.key
    name, entry = max(m.objects.items(), key=lambda kv: sum(len(la.chunks) for la in kv[1].layers))
    refs = [r for layer in entry.layers for r in layer.chunks]
    assert len(refs) >= 2
    rid = list(app.vault.read_chunk(ORG, name, refs[len(refs) // 2]))[-1]["Id"]
    found = snaps.lookup(ORG, conn.key_ref, m, name, rid)
    assert found.state == "live" and found.record["Id"] == rid
    assert snaps.stats.indexes_built == 0
    assert 1 <= snaps.stats.data_chunks_decrypted <= 3


def test_extract_steps_refresh_the_run_lock(tmp_path, fresh_emulator):
    emu = fresh_emulator(scale=60, seed=23)
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    app = make_app(tmp_path, lock_ttl_seconds=3600)
    connect(app, emu)
    clock = lambda: now[0]  # noqa: E731
    plan = app.backup_service(owner="exec-1", clock=clock).start_run(ORG)
    first = app.catalog.get_lock(ORG).expires_at
    # Step Functions runs each extract step as another Lambda, owner ``extract:<run>``
    extract = app.backup_service(owner=f"extract:{plan.run_id}", clock=clock, owner_alive=lambda _o: None)
    for obj in plan.objects:
        now[0] += timedelta(minutes=20)
        while extract.extract_step(ORG, plan.run_id, obj).status is not StepStatus.DONE:
            pass
    assert now[0] - datetime(2026, 1, 1, tzinfo=UTC) > timedelta(hours=1), "the run outlived the TTL"
    lock = app.catalog.get_lock(ORG)
    assert lock.owner == "exec-1" and lock.expires_at > first
    assert lock.expires_at > now[0]
    with pytest.raises(RunInProgress):  # another execution still cannot take the org
        app.backup_service(owner="exec-2", clock=clock, owner_alive=lambda _o: None).start_run(ORG)
    snap = app.backup_service(owner="exec-1", clock=clock).finalize_run(ORG, plan.run_id)
    assert snap.records > 0
    # a late step after the lock was released (run finished or stopped) does not take it again
    assert app.catalog.get_lock(ORG) is None
    extract.refresh_lock(ORG, plan.run_id)
    assert app.catalog.get_lock(ORG) is None


def _run_chunks(app: Any, run_id: str) -> list[Any]:
    return [
        ch
        for cp in app.catalog.list_checkpoints(ORG, run_id)
        for ch in app.catalog.list_chunks(ORG, run_id, cp.object_name)
    ]


def test_a_purge_is_seen_by_the_next_incremental_between_reconciliations(tmp_path, fresh_emulator):
    from orgvault.domain.models import ChunkKind

    emu = fresh_emulator(scale=150, seed=24)
    app = make_app(tmp_path, reconcile_every=7)
    connect(app, emu)
    app.backup_service().run_backup(ORG)

    emu.org.clock.advance(900)
    quiet = app.backup_service().run_backup(ORG)  # nothing changed: one COUNT() per object, no Id read
    assert quiet.snapshot.kind is RunKind.INCREMENTAL
    assert not app.catalog.get_run(ORG, quiet.snapshot.snapshot_id).stats["reconciled"]
    # nor re-writes the overlap window's rows, which the parent holds in the same version
    # (ContentDocumentLink is always read in full: it cannot be queried without an Id filter)
    assert {c.object_name for c in _run_chunks(app, quiet.snapshot.snapshot_id)} == {"ContentDocumentLink"}
    delta_objects = len(app.catalog.list_checkpoints(ORG, quiet.snapshot.snapshot_id))
    # at most one delta read per object; describes go 25 to a Composite call, COUNT()s and probes 5
    assert quiet.api_calls <= delta_objects + 8, (quiet.api_calls, delta_objects)
    assert_identical(app, emu)

    lead = next(emu.org.true_records("Lead", include_blobs=False))["Id"]
    emu.org.purge(lead)  # a hard delete: no trace for a SystemModstamp delta
    emu.org.clock.advance(900)
    inc = app.backup_service().run_backup(ORG)
    assert not app.catalog.get_run(ORG, inc.snapshot.snapshot_id).stats["reconciled"]  # not a scheduled one
    ids_objects = {
        c.object_name for c in _run_chunks(app, inc.snapshot.snapshot_id) if c.kind is ChunkKind.IDS
    }
    assert ids_objects == {"Lead"}, "only the object whose count differs is reconciled"
    assert inc.snapshot.records == quiet.snapshot.records - 1
    assert_identical(app, emu)


def test_batched_describes_and_counts_equal_the_single_calls(tmp_path, emulator):
    app = make_app(tmp_path)
    conn = connect(app, emulator)
    src = app.source_for(app.catalog.get_org(ORG) if conn is None else conn)
    names = ["Account", "Contact", "Task", "Lead", "NoSuchObject__c"] + ["Case"] * 22  # > 25: two calls
    calls0 = src.calls
    many = src.describe_many(names)
    assert src.calls - calls0 == 2
    assert "NoSuchObject__c" not in many
    for name in ("Account", "Contact", "Task", "Lead", "Case"):
        assert many[name] == src.describe(name)
    calls0 = src.calls
    counts = src.count_many([("Account", True), ("Task", True), ("Lead", False), ("NoSuchObject__c", False)])
    assert src.calls - calls0 == 1
    assert "NoSuchObject__c" not in counts
    for name in ("Account", "Task", "Lead"):
        assert counts[name] == len(list(emulator.org.true_records(name, include_blobs=False)))
        assert counts[name] == src.count_records(name, query_all=name != "Lead")


def test_batched_counts_go_five_to_a_composite_call(tmp_path, emulator):
    """Salesforce refuses a Composite call with more than 5 query sub-requests: 24 COUNT()s take
    ceil(24 / 5) = 5 calls, every one answered (none refused), each equal to the count alone."""
    app = make_app(tmp_path)
    conn = connect(app, emulator)
    src = app.source_for(app.catalog.get_org(ORG) if conn is None else conn)
    names = sorted(
        o["name"]
        for o in emulator.org.describe_global()["sobjects"]
        if o["queryable"] and o["name"] not in ("ContentDocumentLink", "RecentlyViewed")
    )[:24]
    assert len(names) == 24
    objects = [(name, name in ("Account", "Task", "Event")) for name in names]
    calls0 = src.calls
    counts = src.count_many(objects)
    assert src.calls - calls0 == 5
    singles = {name: src.count_records(name, query_all=query_all) for name, query_all in objects}
    assert counts == singles
    assert counts["Account"] == len(list(emulator.org.true_records("Account", include_blobs=False)))


def test_batched_first_pages_are_the_pages_the_reads_would_return(tmp_path, fresh_emulator):
    from orgvault.errors import SalesforceRequestError

    emulator = fresh_emulator(scale=1500, seed=3)
    app = make_app(tmp_path)
    conn = connect(app, emulator)
    src = app.source_for(app.catalog.get_org(ORG) if conn is None else conn)
    src.rest_batch_size = 200  # Contact has more than a page: its answer continues
    where = "SystemModstamp >= 2000-01-01T00:00:00Z"  # everything
    cursors = {}
    for name in ("Account", "Lead", "Contact"):
        schema = src.describe(name)
        fields = [f.name for f in schema.fields if f.type not in ("address", "location", "base64")][:12]
        cursors[name] = src.start_read(schema, fields, strategy="rest", where=where, include_deleted=True)
    missing = {**cursors["Lead"], "object": "NoSuchObject__c", "soql": "SELECT Id FROM NoSuchObject__c"}
    calls0 = src.calls
    counts, pages = src.count_and_first_pages(
        [("Account", True)], [*cursors.items(), ("NoSuchObject__c", missing)]
    )
    assert src.calls - calls0 == 1, "counts and first pages share one Composite call"
    assert counts == {"Account": src.count_records("Account", query_all=True)}
    assert "NoSuchObject__c" not in pages  # a failed sub-request is absent, never "no rows"
    for name, cursor in cursors.items():
        alone = src.read_page(cursor)
        assert pages[name].records == alone.records, name
        assert (pages[name].cursor is None) == (alone.cursor is None), name
    assert pages["Lead"].cursor is None and len(pages["Lead"].records) < 200
    assert pages["Contact"].cursor is not None and len(pages["Contact"].records) == 200
    second = src.read_page(pages["Contact"].cursor)  # the batched page's continuation goes on reading
    assert second.records and not {r["Id"] for r in second.records} & {
        r["Id"] for r in pages["Contact"].records
    }
    calls1 = src.calls
    with pytest.raises(SalesforceRequestError):
        src.count_and_first_pages([], [("Contact", pages["Contact"].cursor)])  # not an unread cursor
    assert src.calls == calls1, "a bad cursor makes no call"
