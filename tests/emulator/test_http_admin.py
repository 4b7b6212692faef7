"""The admin API under /__emulator/: auth, clock, faults, org activity, schema changes, truth."""

from __future__ import annotations

import datetime as dt

from simple_salesforce import Salesforce

from salesforce_emulator.client_session import emulator_session

from .conftest import PAGE_SOQL, PAGER_NAMES, api, auth, ensure_pager_leads


def _client(emu):
    session = emulator_session(emu.facts)
    f = emu.facts
    return session, Salesforce(username=f.username, password=f.password, security_token="", session=session)


def test_admin_needs_a_token_and_is_not_counted(emu, session):
    admin = emu.facts.admin_url
    assert session.get(f"{admin}/clock").status_code == 401
    assert session.get(f"{admin}/clock", headers={"Authorization": "Bearer wrong"}).status_code == 401
    used = emu.usage.used
    resp = session.get(f"{admin}/clock", headers=auth(emu))
    assert resp.status_code == 200 and "Sforce-Limit-Info" not in resp.headers
    assert emu.usage.used == used


def test_admin_token_survives_session_expiry(emu, session):
    emu.faults.session_max_requests = 0  # every Salesforce session is expired
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 401
    assert session.get(f"{emu.facts.admin_url}/usage", headers=auth(emu)).status_code == 200


def test_clock_advance_and_set(emu, session):
    admin = emu.facts.admin_url
    before = emu.org.clock.now()
    now = dt.datetime.fromisoformat(
        session.post(f"{admin}/clock", json={"advance": 86400}, headers=auth(emu)).json()["now"]
    )
    assert now - before >= dt.timedelta(days=1)
    target = (now + dt.timedelta(days=3)).replace(microsecond=0)
    got = session.post(f"{admin}/clock", json={"set": target.isoformat()}, headers=auth(emu)).json()["now"]
    assert dt.datetime.fromisoformat(got) >= target
    assert session.post(f"{admin}/clock", json={}, headers=auth(emu)).status_code == 400


def test_usage_reset(emu, session):
    emu.usage.reset(total=2)
    session.get(f"{api(emu)}/limits", headers=auth(emu))
    session.get(f"{api(emu)}/limits", headers=auth(emu))
    assert session.get(f"{api(emu)}/limits", headers=auth(emu)).status_code == 403
    resp = session.post(f"{emu.facts.admin_url}/usage/reset", json={"total": 10}, headers=auth(emu))
    assert resp.json() == {"used": 0, "total": 10}
    assert (
        session.get(f"{api(emu)}/limits", headers=auth(emu)).headers["Sforce-Limit-Info"] == "api-usage=1/10"
    )


def test_add_field_shows_in_describe_and_queries(emu, session, sf):
    admin = emu.facts.admin_url
    name = "Admin_Added__c"
    if name not in {f["name"] for f in sf.Contact.describe()["fields"]}:
        resp = session.post(
            f"{admin}/fields", json={"sobject": "Contact", "name": name, "type": "string"}, headers=auth(emu)
        )
        assert resp.status_code == 201
    assert name in {f["name"] for f in sf.Contact.describe()["fields"]}
    assert sf.query(f"SELECT Id, {name} FROM Contact LIMIT 1")["records"][0][name] is None
    dup = session.post(
        f"{admin}/fields", json={"sobject": "Contact", "name": name, "type": "string"}, headers=auth(emu)
    )
    assert dup.status_code == 400 and dup.json()[0]["errorCode"] == "DUPLICATE_DEVELOPER_NAME"


def test_undelete_and_purge(emu, session, sf):
    admin = emu.facts.admin_url
    rid = sf.Account.create({"Name": "Bin"})["id"]
    sf.Account.delete(rid)
    out = session.post(f"{admin}/undelete", json={"ids": [rid]}, headers=auth(emu)).json()
    assert out == [{"id": rid, "success": True}]
    assert sf.Account.get(rid)["Name"] == "Bin"
    sf.Account.delete(rid)
    assert session.post(f"{admin}/purge", json={"ids": [rid]}, headers=auth(emu)).json()[0]["success"]
    assert sf.query_all(f"SELECT Id FROM Account WHERE Id = '{rid}'", include_deleted=True)["totalSize"] == 0
    again = session.post(f"{admin}/undelete", json={"ids": [rid]}, headers=auth(emu)).json()
    assert again[0]["success"] is False


def test_merge(emu, session, sf):
    master = sf.Account.create({"Name": "Master"})["id"]
    victim = sf.Account.create({"Name": "Victim"})["id"]
    resp = session.post(
        f"{emu.facts.admin_url}/merge",
        json={"sobject": "Account", "master_id": master, "victim_ids": [victim]},
        headers=auth(emu),
    )
    assert resp.status_code == 200
    row = sf.query_all(
        f"SELECT Id, IsDeleted, MasterRecordId FROM Account WHERE Id = '{victim}'", include_deleted=True
    )["records"][0]
    assert row["IsDeleted"] is True and row["MasterRecordId"] == master


def test_truth_counts_and_records(emu, session):
    admin = emu.facts.admin_url
    counts = session.get(f"{admin}/truth", headers=auth(emu)).json()
    assert counts["Account"] == emu.org.count(emu.org.compile("SELECT COUNT() FROM Account"))
    records = session.get(f"{admin}/truth/Account", headers=auth(emu)).json()
    assert len(records) == counts["Account"]
    assert all(r["Id"].startswith("001") for r in records)
    with_deleted = session.get(f"{admin}/truth", params={"include_deleted": "true"}, headers=auth(emu)).json()
    assert with_deleted["Account"] >= counts["Account"]


def test_mutate_through_activity(private_emu, paging_leads, emu):
    shared = emu
    shared_pagers = shared.org.count(
        shared.org.compile("SELECT COUNT() FROM Lead WHERE LastName LIKE 'Pager%'")
    )
    emu = private_emu
    session, sf = _client(emu)
    try:
        import salesforce_emulator.activity  # noqa: F401
    except ImportError:
        resp = session.post(f"{emu.facts.admin_url}/mutate", json={"seed": 1}, headers=auth(emu))
        assert resp.status_code == 500
        return
    before = {
        r["Id"]: r["SystemModstamp"]
        for r in sf.query_all("SELECT Id, SystemModstamp FROM Contact")["records"]
    }
    resp = session.post(
        f"{emu.facts.admin_url}/mutate", json={"seed": 7, "update_share": 0.5}, headers=auth(emu)
    )
    assert resp.status_code == 200, resp.text
    after = {
        r["Id"]: r["SystemModstamp"]
        for r in sf.query_all("SELECT Id, SystemModstamp FROM Contact")["records"]
    }
    assert before != after
    unknown = session.post(f"{emu.facts.admin_url}/activity/_private", json={}, headers=auth(emu))
    assert unknown.status_code == 404
    # the random mutation happened in a private org: the shared org's paging leads are untouched
    assert shared_pagers == paging_leads
    assert shared.org is not private_emu.org


def test_pager_fixture_repairs_whatever_an_earlier_test_did(emu, paging_leads):
    org = emu.org
    rows = org.fetch(org.compile(PAGE_SOQL), None, 10)
    org.delete("Lead", rows.rows[0][0])
    org.update("Lead", rows.rows[1][0], {"LastName": "Renamed pager"})
    org.create("Lead", {"LastName": "Pager99999", "Company": "Stray"})
    org.create("Lead", {"LastName": rows.rows[2][1], "Company": "Duplicate"})
    ensure_pager_leads(org)
    names = [r[1] for r in org.fetch(org.compile(PAGE_SOQL), None, 5000).rows]
    assert sorted(names) == sorted(PAGER_NAMES)
    with_deleted = org.fetch(org.compile(PAGE_SOQL, include_deleted=True), None, 5000).rows
    assert len(with_deleted) == len(PAGER_NAMES)  # nothing left in the recycle bin for queryAll to see


def test_activity_functions_by_name(private_emu):
    emu = private_emu
    session, sf = _client(emu)
    admin = emu.facts.admin_url
    out = session.post(f"{admin}/activity/replace_file", json={"seed": 3}, headers=auth(emu))
    assert out.status_code == 200, out.text
    new_version = out.json()["result"]["new_version"]
    assert sf.ContentVersion.get(new_version)["IsLatest"] is True
    bad = session.post(f"{admin}/activity/replace_file", json={"no_such_arg": 1}, headers=auth(emu))
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_INPUT"
    missing = session.post(f"{admin}/activity/os", json={}, headers=auth(emu))
    assert missing.status_code == 404


def test_unknown_admin_resource(emu, session):
    resp = session.get(f"{emu.facts.admin_url}/nope", headers=auth(emu))
    assert resp.status_code == 404 and resp.json()[0]["errorCode"] == "NOT_FOUND"
