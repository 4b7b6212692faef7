"""Recreate a deleted hierarchy against the emulator: parents first, lookups remapped (polymorphic and
self references included), files re-uploaded; dry run; crash and resume without duplicates; faults."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from orgvault.domain.layout import FileRef
from orgvault.domain.records import canonical_value
from orgvault.domain.restore_plan import RestoreMode
from orgvault.services.restore import RestoreRequest
from orgvault.services.restore_journal import JobStatus
from tests.integration.test_backup_support import ORG, connect, make_app
from tests.integration.test_restore_support import (
    FILE_BYTES,
    delete_hierarchy,
    hierarchy_org,
    restore_kit,
    start_emulator,
)

SYSTEM = {
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
}


@pytest.fixture
def world(tmp_path):
    from salesforce_emulator import Org

    org = Org()
    h = hierarchy_org(org)
    emu = start_emulator(org)
    app = make_app(tmp_path)
    connect(app, emu)
    snap = app.backup_service().run_backup(ORG).snapshot
    try:
        yield app, emu, org, h, snap
    finally:
        emu.stop()
        app.close()


def live(org: Any, obj: str) -> dict[str, dict]:
    recs = {r["Id"]: r for r in org.true_records(obj)}
    if obj == "ContentVersion":  # a version whose document was deleted is gone for users
        docs = {d["Id"] for d in org.true_records("ContentDocument")}
        recs = {k: r for k, r in recs.items() if r["ContentDocumentId"] in docs}
    return recs


def backed_up(app: Any, svc: Any, snap: Any, obj: str, rid: str) -> dict:
    m = svc.snapshots.manifest(snap)
    lk = svc.snapshots.lookup(ORG, "", m, obj, rid)
    assert lk.record is not None, (obj, rid, lk.state)
    return lk.record


def assert_matches_backup(
    app: Any, svc: Any, org: Any, snap: Any, obj: str, old_id: str, id_map: dict
) -> str:
    """The live record restored from ``old_id`` has every createable field of the backup, with
    references mapped through ``id_map`` (or unchanged when the referenced record survived)."""
    new_id = id_map[old_id[:15]]
    truth = live(org, obj)[new_id]
    backup = backed_up(app, svc, snap, obj, old_id)
    describe = {f["name"]: f for f in org.describe(obj)["fields"]}
    for name, value in backup.items():
        f = describe.get(name)
        if name in SYSTEM or f is None or not f["createable"]:
            continue
        if f["type"] == "base64":
            ref = FileRef.from_value(value)
            body = org.read_blob(obj, new_id, name)
            assert ref is not None and body == b"".join(app.vault.read_file_stream(ORG, ref.content_id))
            continue
        if f["type"] == "reference" and value:
            if obj == "ContentVersion" and name == "ContentDocumentId":
                continue  # a re-uploaded file gets a new document (checked through its links)
            want = id_map.get(value[:15], value)
            assert truth[name] == want, f"{obj}.{name}: {truth[name]} != {want} (old {value})"
            continue
        got = canonical_value(truth[name], f["type"]) if truth[name] is not None else None
        assert got == value, f"{obj} {old_id}.{name}: restored {got!r}, backup {value!r}"
    return new_id


def test_deleted_hierarchy_is_recreated_with_consistent_lookups(world):
    app, emu, org, h, snap = world
    before = {
        o: len(live(org, o))
        for o in (
            "Account",
            "Contact",
            "Opportunity",
            "OpportunityLineItem",
            "Case",
            "CaseComment",
            "Task",
            "ContentVersion",
            "Attachment",
        )
    }
    delete_hierarchy(org, h)
    assert h.account not in live(org, "Account")

    svc, writer = restore_kit(app, ORG)
    report = svc.run(RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), with_children=True))
    assert report.status is JobStatus.COMPLETED, report.message
    failed = [r for r in report.results if not r.success]
    assert not failed, failed
    ids = report.id_map

    # every restored record equals its backup, up to new ids, with lookups pointing at the new parents
    acc = assert_matches_backup(app, svc, org, snap, "Account", h.account, ids)
    assert live(org, "Account")[acc]["ParentId"] == h.parent_account  # self reference to a survivor
    boss, minion = (assert_matches_backup(app, svc, org, snap, "Contact", c, ids) for c in h.contacts)
    assert live(org, "Contact")[minion]["ReportsToId"] == boss  # self reference, second pass
    opps = [assert_matches_backup(app, svc, org, snap, "Opportunity", o, ids) for o in h.opportunities]
    olis = [assert_matches_backup(app, svc, org, snap, "OpportunityLineItem", x, ids) for x in h.line_items]
    assert {live(org, "OpportunityLineItem")[x]["OpportunityId"] for x in olis} == set(opps)
    c1, c2 = (assert_matches_backup(app, svc, org, snap, "Case", c, ids) for c in h.cases)
    assert live(org, "Case")[c2]["ParentId"] == c1
    for cc in h.comments:
        assert_matches_backup(app, svc, org, snap, "CaseComment", cc, ids)
    t_call, t_other = (assert_matches_backup(app, svc, org, snap, "Task", t, ids) for t in h.tasks)
    assert live(org, "Task")[t_call]["WhoId"] == minion and live(org, "Task")[t_call]["WhatId"] == opps[0]
    assert live(org, "Task")[t_other]["WhatId"] == acc  # polymorphic, by key prefix
    att = assert_matches_backup(app, svc, org, snap, "Attachment", h.attachment, ids)
    assert live(org, "Attachment")[att]["ParentId"] == acc
    # the file: a new version with the same bytes, its new document linked to the new account
    ver = ids[h.version[:15]]
    assert org.read_blob("ContentVersion", ver, "VersionData") == FILE_BYTES
    new_doc = live(org, "ContentVersion")[ver]["ContentDocumentId"]
    links = [r for r in org.true_records("ContentDocumentLink") if r["ContentDocumentId"] == new_doc]
    assert [link["LinkedEntityId"] for link in links] == [acc]

    # nothing duplicated: the org holds exactly as many live records as before the deletion
    after = {o: len(live(org, o)) for o in before}
    assert after == before
    assert report.api_calls > 0 and writer.calls >= report.api_calls


def test_dry_run_lists_every_write_and_writes_nothing(world):
    app, emu, org, h, snap = world
    delete_hierarchy(org, h)
    counts = {o: len(live(org, o)) for o in ("Account", "Contact", "Case", "Task")}
    used = emu.usage.used
    svc, _ = restore_kit(app, ORG)
    report = svc.run(
        RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), with_children=True, dry_run=True)
    )
    assert report.status is JobStatus.COMPLETED and not report.results
    lines = [p.line() for p in report.planned]
    assert sum(1 for p in report.planned if p.object_name == "Contact" and p.operation == "insert") == 2
    acct = next(p for p in report.planned if p.object_name == "Account" and p.operation == "insert")
    assert acct.values["Name"] == 'Globex, "West"\nDivision' and "CreatedDate" not in acct.values
    assert "Revenue_Per_Employee__c" not in acct.values  # calculated: never sent
    assert any(p.operation == "relink" and p.values.get("ReportsToId") for p in report.planned)
    assert any("upload" in ln.lower() and "ContentVersion" in ln for ln in lines)
    # nothing was written: same records, and only reads were spent
    assert {o: len(live(org, o)) for o in counts} == counts
    assert emu.usage.used > used
    assert not list(app.store.list(f"orgs/{ORG}/restores/"))


def assert_self_references(org: Any, h: Any, id_map: dict) -> None:
    """The second pass happened: self references point at the new records."""
    boss, minion = (id_map[c[:15]] for c in h.contacts)
    assert live(org, "Contact")[minion]["ReportsToId"] == boss
    c1, c2 = (id_map[c[:15]] for c in h.cases)
    assert live(org, "Case")[c2]["ParentId"] == c1


class Crash(Exception):
    pass


@pytest.mark.parametrize("when", ["before-write", "after-write"])
def test_crashed_restore_resumes_without_duplicates(world, when):
    app, emu, org, h, snap = world
    before = {
        o: len(live(org, o))
        for o in ("Account", "Contact", "Opportunity", "Case", "Task", "CaseComment", "ContentVersion")
    }
    delete_hierarchy(org, h)
    seen = {"n": 0}

    def crash(stage: str, batch: Any) -> None:
        if stage == when:
            seen["n"] += 1
            if seen["n"] == 4:  # mid-way: after Account, Contacts, ... were written
                raise Crash(f"killed {stage} batch {batch.seq}")

    svc, _ = restore_kit(app, ORG, batch_size=1, hook=crash)
    with pytest.raises(Crash):
        svc.run(RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), with_children=True))
    job = svc.journal.list_jobs()[-1]
    svc2, _ = restore_kit(app, ORG, batch_size=1)
    report = svc2.run(job_id=job)
    assert report.status is JobStatus.COMPLETED, report.message
    assert {o: len(live(org, o)) for o in before} == before, "a resumed restore duplicated records"
    assert_self_references(org, h, svc2.journal.load(job).id_map)
    new_acc = report.id_map[h.account[:15]]
    assert sum(1 for c in live(org, "Contact").values() if c["AccountId"] == new_acc) == 2
    if when == "after-write":
        # the crashed batch had been applied; resume found it (by fingerprint) rather than re-inserting
        job_state = svc2.journal.load(job)
        assert any(r.get("reconciled") for b in job_state.batches for r in (b.results or []))


def test_expired_sessions_and_503s_are_survived(world):
    app, emu, org, h, snap = world
    delete_hierarchy(org, h)
    emu.faults.session_max_requests = 7
    emu.faults.error_rate = 0.15
    emu.faults.seed = 3
    svc, writer = restore_kit(app, ORG)
    report = svc.run(RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), with_children=True))
    emu.faults.session_max_requests = None
    emu.faults.error_rate = 0.0
    assert report.status is JobStatus.COMPLETED, report.message
    assert all(r.success for r in report.results)
    assert writer.source.logins >= 2 and writer.source.retries > 0
    assert (
        len([c for c in live(org, "Contact").values() if c["AccountId"] == report.id_map[h.account[:15]]])
        == 2
    )


def test_exhausted_allowance_pauses_then_resumes(world):
    app, emu, org, h, snap = world
    delete_hierarchy(org, h)
    emu.usage.reset(40)  # a new day with a tiny allowance (80% of it usable): not enough for everything
    svc, _ = restore_kit(app, ORG, batch_size=1)
    first = svc.run(RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), with_children=True))
    assert first.status is JobStatus.PAUSED and "--resume" in first.message, first.api_calls
    assert any(r.success for r in first.results)
    emu.usage.reset(100_000)  # the next day
    svc2, _ = restore_kit(app, ORG, batch_size=1)
    second = svc2.run(job_id=first.job_id)
    assert second.status is JobStatus.COMPLETED, second.message
    new_acc = second.id_map[h.account[:15]]
    assert sum(1 for a in live(org, "Account").values() if a["Name"].startswith("Globex, ")) == 1
    assert sum(1 for c in live(org, "Contact").values() if c["AccountId"] == new_acc) == 2
    assert sum(1 for t in live(org, "Task").values() if t["WhatId"] == new_acc) == 1


def test_upload_refuses_oversized_bodies_before_sending(world):
    app, emu, org, h, snap = world
    _, writer = restore_kit(app, ORG)
    calls = writer.calls

    class Huge(bytes):
        def __len__(self) -> int:
            return 600 * 1024**2

    from orgvault.errors import SalesforceRequestError

    with pytest.raises(SalesforceRequestError, match="upload limit"):
        writer.upload_file("Attachment", "Body", {"Name": "x", "ParentId": h.account}, Huge(b"x"))
    assert writer.calls == calls
    assert base64  # (imported for helpers)


def test_restore_with_unknown_mode_needs_external_id(world):
    app, emu, org, h, snap = world
    svc, _ = restore_kit(app, ORG)
    from orgvault.services.restore import RestoreRefused

    with pytest.raises(RestoreRefused, match="external-id"):
        svc.run(RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), mode=RestoreMode.UPSERT))


def test_connection_dropped_after_an_insert_creates_nothing_twice(world):
    from salesforce_emulator.faults import FaultRule, RuleAction

    app, emu, org, h, snap = world
    before = {o: len(live(org, o)) for o in ("Account", "Contact", "Opportunity", "Case", "Task")}
    delete_hierarchy(org, h)
    # the server applies the Contacts insert, then the connection drops mid-answer
    rule = FaultRule(
        pattern=r"/composite/sobjects$", method="POST", count=1, action=RuleAction.DROP, drop_after_bytes=10
    )
    emu.faults.rules.append(rule)
    svc, _ = restore_kit(app, ORG)
    report = svc.run(RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), with_children=True))
    assert report.status is JobStatus.COMPLETED, report.message
    assert all(r.success for r in report.results), [r for r in report.results if not r.success]
    assert rule.count == 0, "the fault fired"
    assert {o: len(live(org, o)) for o in before} == before


def test_restore_in_time_boxed_steps_like_a_lambda(world):
    app, emu, org, h, snap = world
    before = {
        o: len(live(org, o)) for o in ("Account", "Contact", "Opportunity", "Case", "Task", "CaseComment")
    }
    delete_hierarchy(org, h)
    svc, _ = restore_kit(app, ORG, batch_size=2)
    report = svc.run(
        RestoreRequest(org=ORG, object_name="Account", ids=(h.account,), with_children=True), time_budget_s=0
    )
    steps = 1
    while report.more:
        assert report.status is JobStatus.PAUSED
        svc, _ = restore_kit(app, ORG, batch_size=2)
        report = svc.run(job_id=report.job_id, time_budget_s=0)
        steps += 1
        assert steps < 40
    assert report.status is JobStatus.COMPLETED, report.message
    assert steps > 5, "every step wrote one batch and handed over"
    assert {o: len(live(org, o)) for o in before} == before
    assert_self_references(org, h, svc.journal.load(report.job_id).id_map)


def test_cli_paused_restore_exits_3_and_resumes(world, tmp_path, capsys):
    import json as _json

    from orgvault.cli import main

    app, emu, org, h, snap = world
    delete_hierarchy(org, h)
    emu.usage.reset(40)  # not enough allowance for the whole restore today
    base = ["--home", str(tmp_path)]
    code = main([*base, "restore", ORG, "Account", "--ids", h.account, "--with-children", "--json"], env={})
    doc = _json.loads(capsys.readouterr().out)
    assert code == 3 and doc["status"] == "paused" and "--resume" in doc["message"]
    emu.usage.reset(100_000)
    assert main([*base, "restore", ORG, "--resume", doc["job_id"]], env={}) == 0
    out = capsys.readouterr().out
    assert f"restore job {doc['job_id']} completed" in out
    assert sum(1 for a in live(org, "Account").values() if a["Name"].startswith("Globex, ")) == 1
    assert main([*base, "restore", ORG, "--list"], env={}) == 0
    assert "completed" in capsys.readouterr().out
