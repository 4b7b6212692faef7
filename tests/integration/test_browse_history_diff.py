"""Browse a snapshot or a point in time, a record's history, diffs between snapshots — through the
services and the CLI; point-in-time lookups through the id index decrypt at most 3 chunks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from orgvault.cli import main
from orgvault.errors import ConfigError, SnapshotNotFound
from orgvault.services.browse import Snapshots, browse
from orgvault.services.diff import diff_snapshots
from orgvault.services.history import record_history
from tests.integration.test_backup_support import ORG, connect, make_app
from tests.integration.test_restore_support import hierarchy_org, start_emulator

MARKER = "Zebrafish-Quokka-4711"  # a value that must never appear in plain text on disk


@pytest.fixture(scope="module")
def two_snapshots(tmp_path_factory):
    from salesforce_emulator import Org

    home = tmp_path_factory.mktemp("browse")
    org = Org()
    h = hierarchy_org(org, extra_accounts=30)
    org.update("Account", h.other_accounts[3], {"Description": MARKER})
    emu = start_emulator(org)
    app = make_app(home, chunk_records=8)  # several chunks per object
    connect(app, emu)
    first = app.backup_service().run_backup(ORG).snapshot
    org.clock.advance(3600)
    org.update("Account", h.account, {"Name": "Globex Renamed", "NumberOfEmployees": 43})
    org.delete("Contact", h.contacts[1])
    new_contact = org.create("Contact", {"LastName": "Newcomer", "AccountId": h.account})
    org.clock.advance(3600)
    second = app.backup_service().run_backup(ORG).snapshot
    yield home, app, emu, org, h, first, second, new_contact
    emu.stop()
    app.close()


def test_browse_at_snapshot_and_time(two_snapshots):
    home, app, emu, org, h, first, second, _ = two_snapshots
    snaps = Snapshots(app.catalog, app.vault)
    old = browse(snaps, ORG, "account", snapshot_id=first.snapshot_id, ids=[h.account])
    assert [r["Name"] for r in old.records] == ['Globex, "West"\nDivision']
    now = browse(snaps, ORG, "Account", ids=[h.account], fields=["Name"])
    assert list(now.records) == [{"Id": h.account, "Name": "Globex Renamed"}]
    at = browse(
        snaps,
        ORG,
        "Account",
        at=first.created_at + (second.created_at - first.created_at) / 2,  # between the two backups
        where="Name ^ globex",
        fields=["Name", "NumberOfEmployees"],
    )
    assert sorted(r["Name"] for r in at.records) == ["Globex Holding", 'Globex, "West"\nDivision']
    assert at.snapshot.snapshot_id == first.snapshot_id
    filtered = list(browse(snaps, ORG, "Account", where="NumberOfEmployees >= 43 and Name ~ renamed").records)
    assert [r["Id"] for r in filtered] == [h.account]
    assert len(list(browse(snaps, ORG, "Account", where="Industry is null", limit=5).records)) == 5
    with pytest.raises(SnapshotNotFound):
        browse(snaps, ORG, "Account", at=first.created_at - timedelta(days=1))
    with pytest.raises(ConfigError, match="operator"):
        browse(snaps, ORG, "Account", where="Name like x")


def test_nothing_decrypted_is_written_to_disk(two_snapshots):
    home, app, emu, org, h, first, second, _ = two_snapshots
    snaps = Snapshots(app.catalog, app.vault)
    assert [
        r["Description"] for r in browse(snaps, ORG, "Account", where=f"Description = {MARKER}").records
    ] == [MARKER]
    for p in home.rglob("*"):
        if p.is_file():
            assert MARKER.encode() not in p.read_bytes(), p


def test_lookup_uses_the_id_index_and_few_chunks(two_snapshots):
    home, app, emu, org, h, first, second, _ = two_snapshots
    conn = app.catalog.get_org(ORG)
    Snapshots(app.catalog, app.vault).build_indexes(ORG, conn.key_ref, second)
    cold = Snapshots(app.catalog, app.vault)  # empty memory caches: indexes come from the vault
    m = cold.manifest(second)
    assert len(m.objects["Account"].layers) == 2  # base + a delta holding the renamed account
    lk = cold.lookup(ORG, conn.key_ref, m, "Account", h.other_accounts[-1])
    assert lk.state == "live" and lk.record["Name"] == "Other 29"
    assert cold.stats.data_chunks_decrypted == 1 and cold.stats.indexes_built == 0
    gone = cold.lookup(ORG, conn.key_ref, m, "Contact", h.contacts[1])
    assert gone.state == "deleted"
    assert cold.stats.data_chunks_decrypted <= 3


def test_history_of_one_record(two_snapshots):
    home, app, emu, org, h, first, second, _ = two_snapshots
    hist = record_history(Snapshots(app.catalog, app.vault), ORG, h.account)
    assert hist.object_name == "Account"
    assert [v.state for v in hist.versions] == ["created", "changed"]
    assert hist.versions[1].changes == {
        "Name": ('Globex, "West"\nDivision', "Globex Renamed"),
        "NumberOfEmployees": (42, 43),
        "Revenue_Per_Employee__c": (29761.92, 29069.78),
    }  # a formula follows
    gone = record_history(Snapshots(app.catalog, app.vault), ORG, h.contacts[1])
    assert [v.state for v in gone.versions] == ["created", "deleted"]
    unchanged = record_history(Snapshots(app.catalog, app.vault), ORG, h.parent_account)
    assert [(v.state, v.snapshot_id, v.until_snapshot_id) for v in unchanged.versions] == [
        ("created", first.snapshot_id, second.snapshot_id)
    ]


def test_diff_between_snapshots(two_snapshots):
    home, app, emu, org, h, first, second, new_contact = two_snapshots
    d = diff_snapshots(Snapshots(app.catalog, app.vault), ORG, second.snapshot_id, first.snapshot_id)
    assert d.older.snapshot_id == first.snapshot_id
    counts = d.counts()
    assert counts["Account"] == {"added": 0, "deleted": 0, "changed": 1}
    con = next(o for o in d.objects if o.object_name == "Contact")
    assert (counts["Contact"]["added"], counts["Contact"]["deleted"]) == (1, 1)
    # the surviving contact's only change is its formula field following the account's new name
    assert all(set(c) == {"Account_Name__c"} for _i, c in con.changed), con.changed
    acc = next(o for o in d.objects if o.object_name == "Account")
    assert acc.changed[0][1]["Name"] == ('Globex, "West"\nDivision', "Globex Renamed")
    assert [r["Id"] for r in con.added] == [new_contact] and [r["Id"] for r in con.deleted] == [h.contacts[1]]
    only = diff_snapshots(
        Snapshots(app.catalog, app.vault), ORG, first.snapshot_id, second.snapshot_id, "Case"
    )
    assert only.counts() == {}


def test_cli_browse_history_diff_restore(two_snapshots, capsys):
    home, app, emu, org, h, first, second, _ = two_snapshots
    base = ["--home", str(home)]
    assert (
        main([*base, "browse", ORG, "Account", "--ids", h.account, "--fields", "Name", "--json"], env={}) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["records"] == [{"Id": h.account, "Name": "Globex Renamed"}]
    assert (
        main(
            [
                *base,
                "browse",
                ORG,
                "Contact",
                "--snapshot",
                first.snapshot_id,
                "--where",
                "LastName = Minion",
            ],
            env={},
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Minion" in out and "1 records" in out
    assert main([*base, "history", ORG, h.account], env={}) == 0
    out = capsys.readouterr().out
    assert "changed" in out and "Globex Renamed" in out
    assert main([*base, "history", ORG, h.account, "--json"], env={}) == 0
    hist = json.loads(capsys.readouterr().out)
    assert [v["state"] for v in hist["versions"]] == ["created", "changed"]
    assert main([*base, "diff", ORG, first.snapshot_id, second.snapshot_id, "Contact", "--json"], env={}) == 0
    [contacts] = json.loads(capsys.readouterr().out)["objects"]
    assert [r["Id"] for r in contacts["deleted"]] == [h.contacts[1]]
    assert main([*base, "diff", ORG, first.snapshot_id, second.snapshot_id], env={}) == 0
    out = capsys.readouterr().out
    assert "Contact: +1 added, -1 deleted" in out
    # restore the deleted contact: a dry run first, then for real
    assert (
        main(
            [
                *base,
                "restore",
                ORG,
                "Contact",
                "--snapshot",
                first.snapshot_id,
                "--ids",
                h.contacts[1],
                "--dry-run",
            ],
            env={},
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "INSERT  Contact" in out and "LastName='Minion'" in out and "nothing written" in out
    before = sum(1 for c in org.true_records("Contact") if c["LastName"] == "Minion")
    assert (
        main(
            [
                *base,
                "restore",
                ORG,
                "Contact",
                "--snapshot",
                first.snapshot_id,
                "--ids",
                h.contacts[1],
                "--json",
            ],
            env={},
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "completed" and doc["counts"] == {"insert:ok": 1}
    assert sum(1 for c in org.true_records("Contact") if c["LastName"] == "Minion") == before + 1
    assert main([*base, "restore", ORG, "--list"], env={}) == 0
    assert doc["job_id"] in capsys.readouterr().out
    assert main([*base, "restore", ORG, "Nope__c", "--ids", h.account], env={}) == 2
    assert "no object" in capsys.readouterr().err
