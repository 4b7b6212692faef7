"""Org activity: the summaries name exactly the ids that changed, deterministically by seed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from salesforce_emulator import Clock, Org
from salesforce_emulator.activity import add_custom_field, merge_records, mutate, replace_file

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def snapshot(org: Org) -> dict[str, dict[str, dict]]:
    return {
        name: {r["Id"]: r for r in org.true_records(name, include_deleted=True, include_blobs=False)}
        for name in org.object_names()
        if org.objects[name.lower()].has_table
    }


@pytest.fixture
def org():
    o = Org.generate(scale=400, seed=2, clock=Clock(T0, frozen=True))
    yield o
    o.close()


def test_mutate_summary_matches_true_records(org):
    org.clock.advance(3600)
    before = snapshot(org)
    summary = mutate(org, seed=9, update_share=0.05, delete_share=0.02, new_files=2)
    after = snapshot(org)
    stamp = org.clock.now()
    changed: dict[str, set[str]] = {}
    for name, recs in after.items():
        for rid, rec in recs.items():
            old = before[name].get(rid)
            if old != rec:
                changed.setdefault(name, set()).add(rid)
    reported: dict[str, set[str]] = {}
    for key in ("updated", "deleted", "created", "lookups"):
        for name, ids in summary[key].items():
            reported.setdefault(name, set()).update(ids)
    # ContentVersion creation also creates its ContentDocument and link; deletes cascade links away
    for name in ("ContentDocument", "ContentDocumentLink"):
        changed.pop(name, None)
    assert changed == reported
    for name, ids in summary["updated"].items():
        for rid in ids:
            assert after[name][rid]["SystemModstamp"] == stamp and not after[name][rid]["IsDeleted"]
    for name, ids in summary["deleted"].items():
        for rid in ids:
            assert after[name][rid]["IsDeleted"] is True
    assert summary["updated"]["Account"] and summary["deleted"]["Account"] and summary["lookups"]
    for name, ids in summary["lookups"].items():
        for rid in ids:
            assert after[name][rid]["SystemModstamp"] == stamp
    assert len(summary["created"]["ContentVersion"]) == 2


def test_mutate_is_deterministic():
    runs = []
    for _ in range(2):
        o = Org.generate(scale=300, seed=4, clock=Clock(T0, frozen=True))
        mutate(o, seed=1)
        s = mutate(o, seed=2, undelete=1, purge=1)
        runs.append((s, snapshot(o)))
        o.close()
    assert runs[0] == runs[1]


def test_undelete_and_purge_from_recycle_bin(org):
    first = mutate(org, seed=1, update_share=0, delete_share=0.05)
    deleted = {rid for ids in first["deleted"].values() for rid in ids}
    org.clock.advance(60)
    second = mutate(org, seed=2, update_share=0, delete_share=0, undelete=2, purge=2)
    und = [rid for ids in second["undeleted"].values() for rid in ids]
    pur = [rid for ids in second["purged"].values() for rid in ids]
    assert len(und) >= 2 and len(pur) >= 2 and set(und) <= deleted and set(pur) <= deleted
    after = snapshot(org)
    for name, ids in second["undeleted"].items():
        assert all(after[name][rid]["IsDeleted"] is False for rid in ids)
    for name, ids in second["purged"].items():
        assert all(rid not in after[name] for rid in ids)


def test_add_custom_field_fills_a_share(org):
    s = add_custom_field(
        org, "Account", "Region__c", "picklist", seed=3, fill_share=0.5, picklist=["North", "South"]
    )
    recs = {r["Id"]: r for r in org.true_records("Account")}
    filled = {rid for rid, r in recs.items() if r["Region__c"] is not None}
    assert filled == set(s["updated"]) and len(filled) == round(len(recs) * 0.5)
    assert {recs[i]["Region__c"] for i in filled} <= {"North", "South"}
    assert any(f["name"] == "Region__c" for f in org.describe("Account")["fields"])


def test_replace_file_creates_a_new_version(org):
    s = replace_file(org, seed=3, size=1234)
    versions = {r["Id"]: r for r in org.true_records("ContentVersion")}
    assert versions[s["old_version"]]["IsLatest"] is False
    assert versions[s["new_version"]]["IsLatest"] is True
    assert versions[s["new_version"]]["ContentDocumentId"] == s["ContentDocumentId"]
    assert len(versions[s["new_version"]]["VersionData"]) == 1234
    assert versions[s["new_version"]]["VersionNumber"] == "2"


def test_merge_records_reparents_children(org):
    s = merge_records(org, "Account", seed=5, count=2)
    assert len(s["merged"]) == 2
    accounts = {r["Id"]: r for r in org.true_records("Account", include_deleted=True)}
    victims = set()
    for m in s["merged"]:
        for v in m["victims"]:
            victims.add(v)
            assert accounts[v]["IsDeleted"] and accounts[v]["MasterRecordId"] == m["master"]
    assert not any(c["AccountId"] in victims for c in org.true_records("Contact"))
    for cid in s["reparented"].get("Contact", []):
        assert any(r["Id"] == cid for r in org.true_records("Contact", include_deleted=True))


@pytest.mark.slow
def test_generator_speed_100k():
    import time

    t = time.process_time()  # CPU time: the machine may be shared
    o = Org.generate(scale=100_000, seed=1, clock=Clock(T0, frozen=True))
    elapsed = time.process_time() - t
    n = sum(o._meta_get("generated")["counts"].values())
    o.close()
    assert n >= 95_000
    assert elapsed < 12, f"{n} records took {elapsed:.1f}s: 1M would not fit in 2 minutes"


@pytest.mark.slow
def test_bulk_csv_throughput():
    """Bulk results of 15-field Account rows: >= 50k records per CPU-second (fetch + CSV)."""
    import time

    o = Org.generate(scale=60_000, seed=1, clock=Clock(T0, frozen=True))
    try:
        q = o.compile(
            "SELECT Id, Name, Type, Industry, AnnualRevenue, NumberOfEmployees, BillingCity, BillingState, "
            "BillingCountry, Phone, Website, Rating, External_Id__c, CreatedDate, SystemModstamp FROM Account",
            for_bulk=True,
        )
        best = 0.0
        for _ in range(3):
            t = time.process_time()
            after, n, size = None, 0, 0
            while True:
                page = o.fetch(q, after, 10_000)
                size += len(o.render_csv(q, page.rows, header=after is None))
                n += len(page.rows)
                after = page.next_after
                if after is None:
                    break
            best = max(best, n / (time.process_time() - t))
        assert n == 9000 and size > n * 100
        assert best >= 50_000, f"{best:.0f} records/s"
    finally:
        o.close()
