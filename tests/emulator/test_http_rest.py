"""REST resources through unmodified simple-salesforce (and raw requests where the client has no call)."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import pytest
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from salesforce_emulator.client_session import emulator_session
from salesforce_emulator.server import EmulatorServer

from .conftest import PAGE_SOQL, api, auth, make_org


def test_describe_global_and_describe(sf, emu):
    glob = sf.describe()
    names = {o["name"] for o in glob["sobjects"]}
    assert {"Account", "Contact", "ContentVersion"} <= names
    assert glob == emu.org.describe_global()
    desc = sf.Account.describe()
    assert desc == emu.org.describe("Account")
    assert any(f["name"] == "External_Id__c" and f["externalId"] for f in desc["fields"])
    meta = sf.Account.metadata()
    assert meta["objectDescribe"]["name"] == "Account"


def test_describe_if_modified_since(emu, session):
    url = f"{api(emu)}/sobjects/Account/describe"
    modified = emu.org.describe_modified_at("Account")
    later = format_datetime((modified + dt.timedelta(days=1)).astimezone(dt.UTC), usegmt=True)
    earlier = format_datetime((modified - dt.timedelta(days=1)).astimezone(dt.UTC), usegmt=True)
    not_modified = session.get(url, headers={**auth(emu), "If-Modified-Since": later})
    assert not_modified.status_code == 304 and not_modified.content == b""
    fresh = session.get(url, headers={**auth(emu), "If-Modified-Since": earlier})
    assert fresh.status_code == 200 and fresh.json()["name"] == "Account"


def test_describe_unknown_object_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.Nope__c.describe()


def test_crud_round_trip(sf, emu):
    created = sf.Account.create({"Name": "CRUD Co", "NumberOfEmployees": 12})
    assert created["success"] and created["id"].startswith("001")
    record_id = created["id"]
    got = sf.Account.get(record_id)
    assert got["Name"] == "CRUD Co" and got["NumberOfEmployees"] == 12
    assert got["attributes"]["type"] == "Account"
    assert sf.Account.update(record_id, {"Name": "CRUD Renamed"}) == 204
    assert sf.Account.get(record_id)["Name"] == "CRUD Renamed"
    partial = sf.session.get(
        f"{api(emu)}/sobjects/Account/{record_id}?fields=Name",
        headers={"Authorization": f"Bearer {sf.session_id}"},
    ).json()
    assert partial["Name"] == "CRUD Renamed" and "NumberOfEmployees" not in partial
    assert sf.Account.delete(record_id) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(record_id)
    deleted = sf.query_all(
        f"SELECT Id, IsDeleted FROM Account WHERE Id = '{record_id}'", include_deleted=True
    )
    assert deleted["records"][0]["IsDeleted"] is True


def test_create_with_missing_required_field_is_400(sf):
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.create({"NumberOfEmployees": 3})
    assert exc.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_upsert_by_external_id_201_then_204_and_300(sf, emu):
    assert sf.Account.upsert("External_Id__c/EXT-UPSERT-1", {"Name": "Upserted"}) == 201
    assert sf.Account.upsert("External_Id__c/EXT-UPSERT-1", {"Name": "Upserted again"}) == 204
    got = sf.Account.get_by_custom_id("External_Id__c", "EXT-UPSERT-1")
    assert got["Name"] == "Upserted again"
    # an ambiguous external id (a non-unique external id field, added through the admin API)
    fields = {f["name"] for f in emu.org.describe("Account")["fields"]}
    if "Legacy_Key__c" not in fields:
        resp = sf.session.post(
            f"{emu.facts.admin_url}/fields",
            headers=auth(emu),
            json={"sobject": "Account", "name": "Legacy_Key__c", "type": "string", "external_id": True},
        )
        assert resp.status_code == 201
    for i in range(2):
        sf.Account.create({"Name": f"Dup {i}", "Legacy_Key__c": "DUP-VALUE"})
    with pytest.raises(SalesforceMoreThanOneRecord) as exc:
        sf.Account.upsert("Legacy_Key__c/DUP-VALUE", {"Name": "which one?"})
    assert exc.value.status == 300
    assert all(u.startswith("/services/data/v59.0/sobjects/Account/001") for u in exc.value.content)
    assert len(exc.value.content) >= 2
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Account.get_by_custom_id("Legacy_Key__c", "DUP-VALUE")


def test_query_paging_at_0_1_2000_and_2001_rows(sf, paging_leads):
    zero = sf.query("SELECT Id FROM Lead WHERE LastName = 'No Such Lead Anywhere'")
    assert zero == {"totalSize": 0, "done": True, "records": []}
    one = sf.query(f"{PAGE_SOQL} LIMIT 1")
    assert one["totalSize"] == 1 and one["done"] and len(one["records"]) == 1
    exact = sf.query(f"{PAGE_SOQL} LIMIT 2000")
    assert exact["totalSize"] == 2000 and exact["done"] and len(exact["records"]) == 2000
    assert "nextRecordsUrl" not in exact
    over = sf.query(f"{PAGE_SOQL} LIMIT 2001")
    assert over["totalSize"] == 2001 and not over["done"] and len(over["records"]) == 2000
    assert over["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    rest = sf.query_more(over["nextRecordsUrl"], identifier_is_url=True)
    assert rest["done"] and len(rest["records"]) == 1
    ids = [r["Id"] for r in over["records"] + rest["records"]]
    assert len(set(ids)) == 2001
    everything = sf.query_all(PAGE_SOQL)
    assert everything["totalSize"] == 2001
    assert [r["Id"] for r in sf.query_all_iter(f"{PAGE_SOQL} LIMIT 2001")] == ids


def test_query_batch_size_option_and_same_page_twice(emu, session, paging_leads):
    headers = {**auth(emu), "Sforce-Query-Options": "batchSize=500"}
    first = session.get(f"{api(emu)}/query", params={"q": PAGE_SOQL}, headers=headers).json()
    assert len(first["records"]) == 500 and not first["done"]
    url = emu.facts.instance_url + first["nextRecordsUrl"]
    a = session.get(url, headers=auth(emu)).json()
    b = session.get(url, headers=auth(emu)).json()
    assert a == b and len(a["records"]) == 500
    assert not {r["Id"] for r in a["records"]} & {r["Id"] for r in first["records"]}
    tiny = session.get(
        f"{api(emu)}/query",
        params={"q": PAGE_SOQL},
        headers={**auth(emu), "Sforce-Query-Options": "batchSize=5"},
    ).json()
    assert len(tiny["records"]) == 200  # clamped to the documented minimum


def test_query_more_takes_its_own_batch_size_hint(emu, session, paging_leads):
    """A small first page, then bigger ones: the hint on a "query more" request sets that page."""
    small = {**auth(emu), "Sforce-Query-Options": "batchSize=200"}
    first = session.get(f"{api(emu)}/query", params={"q": PAGE_SOQL}, headers=small).json()
    assert len(first["records"]) == 200
    url = emu.facts.instance_url + first["nextRecordsUrl"]
    big = session.get(url, headers={**auth(emu), "Sforce-Query-Options": "batchSize=2000"}).json()
    assert len(big["records"]) == 1801 and big["done"]
    again = session.get(url, headers=auth(emu)).json()  # no hint: the query's own size
    assert len(again["records"]) == 200
    seen = [r["Id"] for r in first["records"] + big["records"]]
    assert len(set(seen)) == 2001


def test_locator_expires_with_the_org_clock(emu, session, paging_leads):
    first = session.get(f"{api(emu)}/query", params={"q": PAGE_SOQL}, headers=auth(emu)).json()
    url = emu.facts.instance_url + first["nextRecordsUrl"]
    assert session.get(url, headers=auth(emu)).status_code == 200
    emu.org.clock.advance(2 * 86400 + 60)
    resp = session.get(url, headers=auth(emu))
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    bogus = session.get(f"{api(emu)}/query/01gNOPE-2000", headers=auth(emu))
    assert bogus.status_code == 400 and bogus.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_continuation_says_query_and_keeps_deleted_rows(sf, emu, paging_leads):
    victim = sf.query(f"{PAGE_SOQL} LIMIT 1")["records"][0]["Id"]
    sf.Lead.delete(victim)
    try:
        live = sf.query_all(PAGE_SOQL)["records"]
        first = sf.query(PAGE_SOQL, include_deleted=True)
        assert "/query/" in first["nextRecordsUrl"] and "/queryAll/" not in first["nextRecordsUrl"]
        every = sf.query_all(PAGE_SOQL, include_deleted=True)["records"]
        assert len(every) == len(live) + 1
        assert victim in {r["Id"] for r in every} and victim not in {r["Id"] for r in live}
    finally:
        emu.org.undelete(victim)


def test_count_and_columns(emu, session, sf):
    total = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    assert total == emu.org.count(emu.org.compile("SELECT COUNT() FROM Account"))
    cols = session.get(
        f"{api(emu)}/query",
        params={"q": "SELECT Id, Name, Owner.Name FROM Account", "columns": "true"},
        headers=auth(emu),
    ).json()
    assert [c["displayName"] for c in cols["columnMetadata"]] == ["Id", "Name", "Owner.Name"]
    assert cols["entityName"] == "Account"


def test_malformed_and_invalid_queries(sf, emu, session):
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELEC Id FROM Account")
    assert exc.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT NoSuchField__c FROM Account")
    assert exc.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query("SELECT Id FROM NoSuchObject__c")
    assert exc.value.content[0]["errorCode"] == "INVALID_TYPE"
    resp = session.get(f"{api(emu)}/query", headers=auth(emu))
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_updated_and_deleted(sf, emu):
    now = emu.org.clock.now()
    created = sf.Account.create({"Name": "Replicated"})["id"]
    removed = sf.Account.create({"Name": "Replicated then deleted"})["id"]
    sf.Account.delete(removed)
    emu.org.clock.advance(120)  # windows are whole minutes and end no later than the current minute
    end = emu.org.clock.now()
    start = now - dt.timedelta(minutes=1)
    updated = sf.Account.updated(start, end)
    assert created in updated["ids"] and removed not in updated["ids"]
    deleted = sf.Account.deleted(start, end)
    assert removed in {d["id"] for d in deleted["deletedRecords"]}
    assert "latestDateCovered" in deleted and "earliestDateAvailable" in deleted
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.updated(now - dt.timedelta(days=40), now)
    assert exc.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_replication_id_cap_is_exceeded_id_limit(sf, emu, monkeypatch):
    import salesforce_emulator.org as org_module

    monkeypatch.setattr(org_module, "REPLICATION_ID_LIMIT", 1)
    start = emu.org.clock.now() - dt.timedelta(minutes=1)
    for i in range(2):
        sf.Account.create({"Name": f"Cap {i}"})
    emu.org.clock.advance(120)
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Account.updated(start, emu.org.clock.now())
    assert exc.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_blob_download_via_session_get_even_with_json_content_type(sf, emu):
    row = sf.query("SELECT Id, VersionData FROM ContentVersion LIMIT 1")["records"][0]
    assert row["VersionData"].endswith(f"/sobjects/ContentVersion/{row['Id']}/VersionData")
    resp = sf.session.get(
        f"https://{sf.sf_instance}{row['VersionData']}", headers={**sf.headers}
    )  # Content-Type: application/json, as clients send it
    assert resp.status_code == 200
    assert resp.content == emu.org.read_blob("ContentVersion", row["Id"], "VersionData")
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert sf.ContentVersion.get_base64(row["Id"], base64_field="VersionData") == resp.content


def test_limits_and_usage_header(sf, emu):
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 100_000
    sf.query("SELECT COUNT() FROM Account")
    assert sf.api_usage["api-usage"].total == 100_000
    assert sf.api_usage["api-usage"].used == emu.usage.used


def test_record_count_lists_live_records_of_the_named_objects(sf, emu):
    live = sf.query("SELECT COUNT() FROM Contact")["totalSize"]
    victim = sf.query("SELECT Id FROM Contact LIMIT 1")["records"][0]["Id"]
    sf.Contact.delete(victim)  # in the recycle bin: not counted
    body = sf.restful("limits/recordCount", params={"sObjects": "Contact,Account,Nope__c"})
    counts = {o["name"]: o["count"] for o in body["sObjects"]}
    assert counts == {
        "Contact": live - 1,
        "Account": sf.query("SELECT COUNT() FROM Account")["totalSize"],
    }, "unknown names are left out"
    every = sf.restful("limits/recordCount")["sObjects"]
    assert {o["name"] for o in every} == set(emu.org.object_names())


def test_collections_create_update_delete_in_order(sf, emu):
    records = [{"attributes": {"type": "Account"}, "Name": f"Coll {i}"} for i in range(3)]
    out = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": records})
    assert [r["success"] for r in out] == [True, True, True]
    ids = [r["id"] for r in out]
    names = {
        r["Id"]: r["Name"]
        for r in sf.query("SELECT Id, Name FROM Account WHERE Id IN ('" + "','".join(ids) + "')")["records"]
    }
    assert [names[i] for i in ids] == ["Coll 0", "Coll 1", "Coll 2"]
    upd = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "id": ids[0], "Name": "Coll zero"},
                {"attributes": {"type": "Account"}, "id": "001000000000000AAA", "Name": "ghost"},
            ]
        },
    )
    assert upd[0]["success"] and not upd[1]["success"]
    assert upd[1]["errors"][0]["statusCode"] in (
        "ENTITY_IS_DELETED",
        "NOT_FOUND",
        "INVALID_CROSS_REFERENCE_KEY",
    )
    assert sf.Account.get(ids[0])["Name"] == "Coll zero"
    dele = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids)})
    assert [r["success"] for r in dele] == [True, True, True]


def test_collections_all_or_none_rolls_back(sf, emu):
    before = sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'AON %'")["totalSize"]
    out = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "AON 1"},
                {"attributes": {"type": "Account"}, "NumberOfEmployees": 1},
            ],
        },
    )
    assert [r["success"] for r in out] == [False, False]
    assert out[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert out[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'AON %'")["totalSize"] == before


def test_collections_upsert_and_limit_of_200(sf, emu, session):
    out = sf.restful(
        "composite/sobjects/Account/External_Id__c",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "External_Id__c": "COLL-UP-1", "Name": "Up 1"},
            ]
        },
    )
    assert out[0]["success"] and out[0]["created"] is True
    out = sf.restful(
        "composite/sobjects/Account/External_Id__c",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Account"}, "External_Id__c": "COLL-UP-1", "Name": "Up 1b"},
            ]
        },
    )
    assert out[0]["created"] is False
    too_many = [{"attributes": {"type": "Account"}, "Name": "x"}] * 201
    resp = session.post(f"{api(emu)}/composite/sobjects", json={"records": too_many}, headers=auth(emu))
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_composite_with_reference_ids(sf, emu, session):
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Account",
                "referenceId": "acct",
                "body": {"Name": "Composite Parent"},
            },
            {
                "method": "POST",
                "url": "/services/data/v59.0/sobjects/Contact",
                "referenceId": "ct",
                "body": {"LastName": "Composite Child", "AccountId": "@{acct.id}"},
            },
            {
                "method": "GET",
                "url": "/services/data/v59.0/sobjects/Contact/@{ct.id}?fields=AccountId,LastName",
                "referenceId": "read",
            },
        ],
    }
    out = sf.restful("composite", method="POST", json=body)["compositeResponse"]
    assert [r["httpStatusCode"] for r in out] == [201, 201, 200]
    assert out[2]["body"]["AccountId"] == out[0]["body"]["id"]
    too_many = {
        "compositeRequest": [
            {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": f"r{i}"} for i in range(26)
        ]
    }
    resp = session.post(f"{api(emu)}/composite", json=too_many, headers=auth(emu))
    assert resp.status_code == 400
    parent_id = out[0]["body"]["id"]
    halted = sf.restful(
        "composite",
        method="POST",
        json={
            "allOrNone": True,
            "compositeRequest": [
                {
                    "method": "POST",
                    "url": "/services/data/v59.0/sobjects/Account",
                    "referenceId": "ok",
                    "body": {"Name": "Rolled back parent"},
                },
                {
                    "method": "PATCH",
                    "url": f"/services/data/v59.0/sobjects/Account/{parent_id}",
                    "referenceId": "upd",
                    "body": {"Name": "Changed then restored"},
                },
                {
                    "method": "POST",
                    "url": "/services/data/v59.0/sobjects/Account",
                    "referenceId": "bad",
                    "body": {},
                },
                {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": "after"},
            ],
        },
    )["compositeResponse"]
    assert [r["httpStatusCode"] for r in halted] == [400, 400, 400, 400]
    assert halted[2]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert {halted[i]["body"][0]["errorCode"] for i in (0, 1, 3)} == {"PROCESSING_HALTED"}
    assert sf.query("SELECT COUNT() FROM Account WHERE Name = 'Rolled back parent'")["totalSize"] == 0
    assert sf.Account.get(parent_id)["Name"] == "Composite Parent"


def test_composite_refuses_more_than_five_query_operations(sf, emu, session, paging_leads):
    """Salesforce allows 25 sub-requests of which at most 5 query operations (Query, QueryAll, query
    more): six are refused as a whole, before any sub-request runs, and the call still counts."""
    count = "/services/data/v59.0/query?q=SELECT+COUNT()+FROM+Account"
    describe = "/services/data/v59.0/sobjects/Account/describe"
    create = {
        "method": "POST",
        "url": "/services/data/v59.0/sobjects/Account",
        "referenceId": "new",
        "body": {"Name": "Never created by a refused composite"},
    }
    five = [{"method": "GET", "url": count, "referenceId": f"q{i}"} for i in range(5)]
    describes = [{"method": "GET", "url": describe, "referenceId": f"d{i}"} for i in range(20)]
    ok = sf.restful("composite", method="POST", json={"compositeRequest": five + describes})[
        "compositeResponse"
    ]
    assert [r["httpStatusCode"] for r in ok] == [200] * 25, "5 queries + 20 describes is within the limits"
    live = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    assert {r["body"]["totalSize"] for r in ok[:5]} == {live}

    sixth_kinds = {
        "queryAll": "/services/data/v59.0/queryAll?q=SELECT+Id+FROM+Account",
        "query more": sf.query(PAGE_SOQL)["nextRecordsUrl"],
    }
    for kind, url in sixth_kinds.items():
        used = emu.usage.used
        subs = [create, *five, {"method": "GET", "url": url, "referenceId": "sixth"}]
        resp = session.post(f"{api(emu)}/composite", json={"compositeRequest": subs}, headers=auth(emu))
        assert resp.status_code == 200, kind
        [refusal] = resp.json()["compositeResponse"]
        assert refusal["httpStatusCode"] == 400 and refusal["referenceId"] is None, kind
        assert refusal["body"][0]["errorCode"] == "LIMIT_EXCEEDED", kind
        assert "5 query operations" in refusal["body"][0]["message"], kind
        assert emu.usage.used == used + 1, "a refused composite is still one API call"
    assert (
        sf.query("SELECT COUNT() FROM Account WHERE Name = 'Never created by a refused composite'")[
            "totalSize"
        ]
        == 0
    ), "nothing of a refused composite runs"


def test_external_id_values_with_a_slash_stay_one_segment(sf, emu, session):
    url = f"{api(emu)}/sobjects/Account/External_Id__c/EXT%2FSLASH%2F1"
    resp = session.patch(url, json={"Name": "Slashed"}, headers=auth(emu))
    assert resp.status_code == 201, resp.text
    assert sf.Account.get_by_custom_id("External_Id__c", "EXT/SLASH/1")["Name"] == "Slashed"


def test_urls_in_bodies_carry_the_version_the_client_called(emu, session):
    v = "52.0"
    base = f"/services/data/v{v}/sobjects/"
    cv = session.get(
        f"{api(emu, v)}/query", params={"q": "SELECT Id FROM ContentVersion LIMIT 1"}, headers=auth(emu)
    ).json()["records"][0]
    assert cv["attributes"]["url"].startswith(base)
    got = session.get(f"{api(emu, v)}/sobjects/ContentVersion/{cv['Id']}", headers=auth(emu)).json()
    assert got["attributes"]["url"] == f"{base}ContentVersion/{cv['Id']}"
    assert got["VersionData"] == f"{base}ContentVersion/{cv['Id']}/VersionData"
    some = session.get(
        f"{api(emu, v)}/composite/sobjects/ContentVersion",
        params={"ids": cv["Id"], "fields": "Id,Title"},
        headers=auth(emu),
    ).json()
    assert some[0]["attributes"]["url"] == f"{base}ContentVersion/{cv['Id']}"
    desc = session.get(f"{api(emu, v)}/sobjects/Account/describe", headers=auth(emu)).json()
    assert desc["urls"]["sobject"] == f"{base}Account"
    glob = session.get(f"{api(emu, v)}/sobjects", headers=auth(emu)).json()
    assert all(e["urls"]["sobject"].startswith(base) for e in glob["sobjects"] if e.get("urls"))


def test_pages_shrink_to_200_when_several_long_text_fields_are_selected():
    org = make_org()
    try:
        for i in range(450):
            org.create("Account", {"Name": f"Longtext {i:03d}", "Description": "d" * 300})
        where = "WHERE Name LIKE 'Longtext%'"
        two_long = f"SELECT Id, Description, Notes_Long__c FROM Account {where}"
        parent_long = f"SELECT Id, Description, Parent.Description FROM Account {where}"
        one_long = f"SELECT Id, Name, Description FROM Account {where}"
        with EmulatorServer.start(org) as emu:
            session = emulator_session(emu.facts)
            hint = {**auth(emu), "Sforce-Query-Options": "batchSize=2000"}

            def sizes(soql, headers):
                page = session.get(f"{api(emu)}/query", params={"q": soql}, headers=headers).json()
                out = [len(page["records"])]
                while not page["done"]:
                    page = session.get(
                        emu.facts.instance_url + page["nextRecordsUrl"], headers=headers
                    ).json()
                    out.append(len(page["records"]))
                return out

            assert sizes(two_long, auth(emu)) == [200, 200, 50]
            assert sizes(two_long, hint) == [200, 200, 50]  # the hint cannot raise it
            assert sizes(parent_long, auth(emu)) == [200, 200, 50]  # parent fields count too
            assert sizes(one_long, auth(emu)) == [450]
        with EmulatorServer.start(org, long_text_fields=None) as emu:
            session = emulator_session(emu.facts)
            assert sizes(two_long, auth(emu)) == [450]
    finally:
        org.close()
