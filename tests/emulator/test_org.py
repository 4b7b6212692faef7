"""Org model: CRUD and validation, recycle bin, keyset paging, rendering, formulas, replication."""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from salesforce_emulator import Clock, Org, SalesforceError
from salesforce_emulator.ids import is_valid_id, to_18

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def org():
    o = Org(clock=Clock(T0, frozen=True))
    yield o
    o.close()


def err(fn, *args, **kw) -> SalesforceError:
    with pytest.raises(SalesforceError) as exc:
        fn(*args, **kw)
    return exc.value


# ----------------------------------------------------------------------------- create / validation


def test_create_stamps_system_fields(org):
    rid = org.create("Account", {"Name": "Acme"})
    assert is_valid_id(rid) and rid.startswith("001") and len(rid) == 18
    rec = next(org.true_records("Account"))
    assert rec["Id"] == rid and rec["IsDeleted"] is False
    assert rec["CreatedDate"] == rec["LastModifiedDate"] == rec["SystemModstamp"] == T0
    assert rec["CreatedById"] == org.user_id == rec["OwnerId"]


@pytest.mark.parametrize(
    "values, code, fields",
    [
        ({"Name": "x", "Nope__c": 1}, "INVALID_FIELD", ["Nope__c"]),
        (
            {"Name": "x", "CreatedDate": "2020-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["CreatedDate"],
        ),
        (
            {"Name": "x", "Revenue_Per_Employee__c": 5},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["Revenue_Per_Employee__c"],
        ),
        ({"Industry": "Banking"}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ({"Name": ""}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ({"Name": "x", "ParentId": "garbage"}, "MALFORMED_ID", []),
        ({"Name": "x", "ParentId": "003000000000001AAA"}, "FIELD_INTEGRITY_EXCEPTION", ["ParentId"]),
        ({"Name": "x" * 256}, "STRING_TOO_LONG", ["Name"]),
        (
            {"Name": "x", "NumberOfEmployees": "many"},
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            ["NumberOfEmployees"],
        ),
        ({"Name": "x", "Active__c": "maybe"}, "INVALID_TYPE_ON_FIELD_IN_RECORD", ["Active__c"]),
        (
            {"Name": "x", "Customer_Since__c": "01/02/2020"},
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            ["Customer_Since__c"],
        ),
    ],
)
def test_create_validation(org, values, code, fields):
    e = err(org.create, "Account", values)
    assert e.status == 400 and e.error_code == code
    if fields:
        assert e.fields == fields
    assert list(org.true_records("Account")) == []  # nothing written


def test_unknown_object_and_non_createable(org):
    assert err(org.create, "Nope__c", {"Name": "x"}).status == 404
    assert err(org.create, "AccountChangeEvent", {}).error_code == "INVALID_TYPE"
    assert err(org.create, "ContentDocument", {"Title": "x"}).error_code == "INVALID_TYPE_FOR_OPERATION"


def test_reference_to_missing_record(org):
    e = err(org.create, "Contact", {"LastName": "x", "AccountId": to_18("001000000000999")})
    assert e.error_code == "INVALID_CROSS_REFERENCE_KEY" and e.fields == ["AccountId"]


def test_type_coercion_from_csv_text(org):
    rid = org.create(
        "Account",
        {
            "Name": "x",
            "NumberOfEmployees": "12",
            "AnnualRevenue": "1234.567",
            "Active__c": "true",
            "Customer_Since__c": "2021-02-03",
            "Support_Hours_Start__c": "08:30",
            "Discount__c": "",
        },
    )
    rec = next(org.true_records("Account"))
    assert rec["Id"] == rid and rec["NumberOfEmployees"] == 12 and rec["AnnualRevenue"] == 1234.57
    assert rec["Active__c"] is True and rec["Customer_Since__c"] == date(2021, 2, 3)
    assert rec["Support_Hours_Start__c"].isoformat() == "08:30:00" and rec["Discount__c"] is None


def test_duplicate_external_id(org):
    org.create("Account", {"Name": "a", "External_Id__c": "E1"})
    e = err(org.create, "Account", {"Name": "b", "External_Id__c": "e1"})
    assert e.error_code == "DUPLICATE_VALUE" and e.fields == ["External_Id__c"]


# ----------------------------------------------------------------------------- update / upsert


def test_update_moves_stamps_and_validates(org):
    rid = org.create("Account", {"Name": "a"})
    org.clock.advance(90)
    org.update("Account", rid, {"Name": "b", "Industry": "Energy"})
    rec = next(org.true_records("Account"))
    assert rec["Name"] == "b" and rec["SystemModstamp"] == T0 + timedelta(seconds=90)
    assert rec["CreatedDate"] == T0
    assert err(org.update, "Account", rid, {"Name": None}).error_code == "REQUIRED_FIELD_MISSING"
    assert (
        err(org.update, "Account", rid, {"CreatedById": org.user_id}).error_code
        == "INVALID_FIELD_FOR_INSERT_UPDATE"
    )
    assert err(org.update, "Account", "001" + "x" * 3, {"Name": "c"}).error_code == "MALFORMED_ID"
    missing = rid[:9] + "zzzzzz"
    assert err(org.update, "Account", missing, {"Name": "c"}).status == 404


def test_upsert_by_external_id(org):
    rid, created = org.upsert("Account", "External_Id__c", "X-1", {"Name": "first"})
    assert created
    rid2, created2 = org.upsert("Account", "external_id__c", "X-1", {"Name": "second"})
    assert rid2 == rid and not created2
    assert [r["Name"] for r in org.true_records("Account")] == ["second"]
    assert err(org.upsert, "Account", "Name", "x", {}).status == 404


def test_parent_by_external_id(org):
    acc = org.create("Account", {"Name": "a", "External_Id__c": "EXT-1"})
    c1 = org.create(
        "Contact",
        {"LastName": "x", "Account": {"attributes": {"type": "Account"}, "External_Id__c": "EXT-1"}},
    )
    c2 = org.create("Contact", {"LastName": "y", "Account.External_Id__c": "ext-1"})  # Bulk CSV header form
    assert {r["Id"]: r["AccountId"] for r in org.true_records("Contact")} == {c1: acc, c2: acc}
    e = err(org.create, "Contact", {"LastName": "z", "Account": {"External_Id__c": "nope"}})
    assert e.error_code == "INVALID_FIELD" and "Foreign key external ID" in e.message
    assert err(org.create, "Contact", {"LastName": "z", "Account.Name": "a"}).error_code == "INVALID_FIELD"
    task = org.create("Task", {"What": {"attributes": {"type": "Account"}, "External_Id__c": "EXT-1"}})
    assert next(org.true_records("Task"))["WhatId"] == acc and task
    assert err(org.create, "Task", {"What": {"External_Id__c": "EXT-1"}}).error_code == "INVALID_FIELD"
    assert (
        err(org.create, "Task", {"What": {"attributes": {"type": "Lead"}, "Id": acc}}).error_code
        == "INVALID_FIELD"
    )
    org.update("Contact", c2, {"Account.External_Id__c": ""})
    assert [r["AccountId"] for r in org.true_records("Contact") if r["Id"] == c2] == [None]


def test_upsert_matching_several_records_is_300(org):
    a = org.create("Contact", {"LastName": "a", "Legacy_Id__c": "L1"})
    b = org.create("Contact", {"LastName": "b", "Legacy_Id__c": "L1"})
    e = err(org.upsert, "Contact", "Legacy_Id__c", "L1", {"LastName": "c"})
    assert e.status == 300 and e.error_code == "MULTIPLE_CHOICES" and a in e.message and b in e.message
    assert [r["LastName"] for r in org.true_records("Contact")] == ["a", "b"]


# ----------------------------------------------------------------------------- recycle bin


def test_delete_undelete_purge_and_query_all(org):
    rid = org.create("Account", {"Name": "a"})
    org.clock.advance(10)
    org.delete("Account", rid)
    q = org.compile("SELECT Id, IsDeleted FROM Account")
    assert org.count(q) == 0
    qa = org.compile("SELECT Id, IsDeleted FROM Account", include_deleted=True)
    assert org.fetch(qa, None, 10).rows[0][:2] == (rid, True)
    assert err(org.delete, "Account", rid).error_code == "ENTITY_IS_DELETED"
    assert err(org.retrieve, "Account", rid).error_code == "ENTITY_IS_DELETED"
    org.undelete(rid)
    assert org.count(org.compile("SELECT Id FROM Account")) == 1
    assert err(org.undelete, rid).error_code == "UNDELETE_FAILED"
    org.purge(rid)
    assert org.count(org.compile("SELECT Id FROM Account", include_deleted=True)) == 0
    assert err(org.retrieve, "Account", rid).status == 404


def test_recycle_bin_window_is_15_days(org):
    keep = org.create("Account", {"Name": "keep"})
    old = org.create("Account", {"Name": "old"})
    org.delete("Account", old)
    org.clock.advance(10 * 86400)
    org.delete("Account", keep)
    org.clock.advance(5 * 86400 + 60)  # "old" now deleted > 15 days ago, "keep" 5 days ago
    qa = org.compile("SELECT Name FROM Account", include_deleted=True)
    assert [r[0] for r in org.fetch(qa, None, 10).rows] == ["keep"]
    assert err(org.undelete, old).status == 404  # gone for good
    body = org.get_deleted("Account", org.clock.now() - timedelta(days=20), org.clock.now())
    assert [d["id"] for d in body["deletedRecords"]] == [keep]
    # deletions were lost before earliestDateAvailable
    assert body["earliestDateAvailable"] == (T0.strftime("%Y-%m-%dT%H:%M:%S") + ".000+0000")


def test_account_delete_takes_contacts_opportunities_cases_and_activities_along(org):
    acc = org.create("Account", {"Name": "A"})
    con = org.create("Contact", {"LastName": "C", "AccountId": acc})
    opp = org.create(
        "Opportunity", {"Name": "O", "AccountId": acc, "StageName": "Prospecting", "CloseDate": "2024-06-01"}
    )
    task = org.create("Task", {"WhatId": opp, "Subject": "Call"})
    case = org.create("Case", {"AccountId": acc})
    org.delete("Account", acc)
    assert [r["Id"] for r in org.true_records("Contact")] == []
    assert [r["Id"] for r in org.true_records("Opportunity")] == []
    assert [r["Id"] for r in org.true_records("Task")] == []
    assert [r["Id"] for r in org.true_records("Case")] == []  # Salesforce deletes the account's cases
    assert [r["Id"] for r in org.true_records("Case", include_deleted=True)] == [case]
    org.undelete(acc)
    assert [r["Id"] for r in org.true_records("Contact")] == [con]
    assert [r["Id"] for r in org.true_records("Opportunity")] == [opp]
    assert [r["Id"] for r in org.true_records("Task")] == [task]
    assert [r["Id"] for r in org.true_records("Case")] == [case]


def test_lookups_are_cleared_on_delete_and_restored_on_undelete(org):
    acc = org.create("Account", {"Name": "A"})
    proj = org.create("Project__c", {"Name": "P", "Account__c": acc})
    con = org.create("Contact", {"LastName": "C"})
    case = org.create("Case", {"ContactId": con})
    org.clock.advance(60)
    org.delete("Account", acc)
    org.delete("Contact", con)
    p = next(org.true_records("Project__c"))
    assert p["Account__c"] is None and next(org.true_records("Case"))["ContactId"] is None
    assert p["SystemModstamp"] == T0 + timedelta(seconds=60) and p["LastModifiedDate"] == T0
    org.clock.advance(120)
    assert org.get_updated("Project__c", T0 + timedelta(seconds=30), org.clock.now())["ids"] == [proj]
    org.undelete(acc)
    assert next(org.true_records("Project__c"))["Account__c"] == acc
    org.undelete(con)
    assert [r["ContactId"] for r in org.true_records("Case") if r["Id"] == case] == [con]


def _file(org, parent, name="f.txt"):
    """A new file first published on ``parent``; returns (ContentDocumentId, ContentDocumentLink id)."""
    v = org.create(
        "ContentVersion",
        {"Title": name, "PathOnClient": name, "FirstPublishLocationId": parent, "VersionData": "aGk="},
    )
    doc = org.retrieve("ContentVersion", v)["ContentDocumentId"]
    q = org.compile(f"SELECT Id, LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{doc}'")
    return doc, [tuple(r[:2]) for r in org.fetch(q, None, 10).rows]


def _links(org, doc):
    q = org.compile(f"SELECT Id, LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{doc}'")
    return [tuple(r[:2]) for r in org.fetch(q, None, 10).rows]


def test_undelete_restores_content_document_links_with_their_ids(org):
    acc = org.create("Account", {"Name": "A"})
    case = org.create("Case", {"AccountId": acc})
    acc_doc, acc_links = _file(org, acc)
    case_doc, case_links = _file(org, case)
    assert [e for _, e in acc_links] == [acc] and [e for _, e in case_links] == [case]
    org.delete("Account", acc)  # takes the case along; links have no recycle bin
    assert _links(org, acc_doc) == [] and _links(org, case_doc) == []
    org.undelete(acc)
    assert _links(org, acc_doc) == acc_links and _links(org, case_doc) == case_links
    # a link whose document is deleted meanwhile stays away until the document comes back
    org.delete("Case", case)
    org.delete("ContentDocument", case_doc)
    org.undelete(case)
    assert _links(org, case_doc) == []
    org.undelete(case_doc)
    assert _links(org, case_doc) == case_links
    # purge forgets the removed links for good
    org.delete("Account", acc)
    org.purge(acc)
    assert _links(org, acc_doc) == []


def test_master_detail_cascade(org):
    p = org.create("Project__c", {"Name": "P"})
    m1 = org.create("Milestone__c", {"Name": "m1", "Project__c": p})
    org.delete("Project__c", p)
    assert list(org.true_records("Milestone__c")) == []
    assert [r["Id"] for r in org.true_records("Milestone__c", include_deleted=True)] == [m1]
    org.undelete(p)
    assert [r["Id"] for r in org.true_records("Milestone__c")] == [m1]


# ----------------------------------------------------------------------------- paging


def _accounts(org, n):
    with org.transaction():
        for i in range(n):
            org.create("Account", {"Name": f"A{i:05d}", "NumberOfEmployees": i % 7 if i % 5 else None})


@pytest.mark.parametrize("n", [0, 1, 2000, 2001])
def test_keyset_paging(org, n):
    _accounts(org, n)
    for soql in (
        "SELECT Id, Name FROM Account",
        "SELECT Id, Name FROM Account ORDER BY NumberOfEmployees DESC NULLS FIRST, Name DESC",
    ):
        q = org.compile(soql)
        assert org.count(q) == n
        pages, after, seen = 0, None, []
        while True:
            page = org.fetch(q, after, 2000)
            seen.extend(r[1] for r in page.rows)
            pages += 1
            after = page.next_after
            if after is None:
                break
        assert len(seen) == n and len(set(seen)) == n
        assert pages == max(1, -(-n // 2000))
    # ordered paging matches a one-shot sort
    q = org.compile(
        "SELECT Name, NumberOfEmployees FROM Account ORDER BY NumberOfEmployees DESC NULLS FIRST, Name DESC"
    )
    rows, after = [], None
    while True:
        page = org.fetch(q, after, 333)
        rows.extend(r[:2] for r in page.rows)
        if page.next_after is None:
            break
        after = page.next_after
    expect = sorted(
        ((f"A{i:05d}", i % 7 if i % 5 else None) for i in range(n)),
        key=lambda t: (t[1] is not None, -(t[1] or 0), [-ord(c) for c in t[0]]),
    )
    assert rows == [(a, b) for a, b in expect]


def test_page_token_is_stateless_and_limit_is_honoured(org):
    _accounts(org, 25)
    q = org.compile("SELECT Name FROM Account ORDER BY Name LIMIT 12")
    p1 = org.fetch(q, None, 5)
    p2 = org.fetch(q, p1.next_after, 5)
    assert org.fetch(q, p1.next_after, 5) == p2  # re-served identically
    p3 = org.fetch(q, p2.next_after, 5)
    assert [len(p.rows) for p in (p1, p2, p3)] == [5, 5, 2] and p3.next_after is None
    assert err(org.fetch, q, "bogus!", 5).error_code == "INVALID_QUERY_LOCATOR"
    other = org.compile("SELECT Name FROM Account ORDER BY Name LIMIT 13")
    assert err(org.fetch, other, p1.next_after, 5).error_code == "INVALID_QUERY_LOCATOR"
    same = org.compile("SELECT Name FROM Account ORDER BY Name LIMIT 12")  # recompiled: still valid
    assert org.fetch(same, p1.next_after, 5) == p2


# ----------------------------------------------------------------------------- rendering

HOSTILE = ['say "hi", then leave', "multi\nline\r\nvalue", "", None, "עברית 🚀 中文", "trailing,", '"']


def test_csv_edge_cases_round_trip(org):
    with org.transaction():
        for i, text in enumerate(HOSTILE):
            org.create(
                "Account",
                {
                    "Name": f"n{i}",
                    "Site": text,
                    "Active__c": i % 2 == 0,
                    "AnnualRevenue": 1.5 if i else None,
                    "NumberOfEmployees": i,
                },
            )
    q = org.compile(
        "SELECT Id, Name, Site, Active__c, AnnualRevenue, NumberOfEmployees, CreatedDate, Parent.Name "
        "FROM Account",
        for_bulk=True,
    )
    data = org.render_csv(q, org.fetch(q, None, 100).rows, header=True)
    text = data.decode()
    assert text.startswith(
        '"Id","Name","Site","Active__c","AnnualRevenue","NumberOfEmployees","CreatedDate","Parent.Name"\n'
    )
    assert text.endswith("\n") and "\r\n" in text  # CRLF inside a value is kept
    assert '"say ""hi"", then leave"' in text
    assert '"2024-05-01T09:30:00.000Z"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(HOSTILE)
    sites = [r[2] for r in rows[1:]]
    assert sites == [t or "" for t in HOSTILE]  # null and empty both an empty cell
    assert [r[3] for r in rows[1:3]] == ["true", "false"]
    assert rows[1][4] == "" and rows[2][4] == "1.5" and rows[2][5] == "1"
    assert all(r[7] == "" for r in rows[1:])
    # every cell is quoted
    first_data_line = text.split("\n")[1]
    assert first_data_line.startswith('"') and '","' in first_data_line
    assert org.render_csv(q, [], header=True).decode().count("\n") == 1
    assert org.render_csv(q, [], header=False) == b""
    assert b"\r\n" in org.render_csv(q, [], header=True, line_ending="CRLF")


def test_json_shapes(org):
    acc = org.create(
        "Account",
        {
            "Name": "Acme",
            "BillingCity": "Paris",
            "BillingLatitude": 48.8,
            "Headquarters__Latitude__s": 1.5,
            "Headquarters__Longitude__s": 2.5,
        },
    )
    c1 = org.create("Contact", {"LastName": "L", "AccountId": acc})
    c2 = org.create("Contact", {"LastName": "M"})
    q = org.compile(
        "SELECT Id, Account.Name, Account.BillingAddress, Account.Headquarters__c, CreatedDate, "
        "HasOptedOutOfEmail, Birthdate FROM Contact"
    )
    recs = org.render_json(q, org.fetch(q, None, 10).rows, api_version="61.0")
    r1, r2 = recs
    assert r1["attributes"] == {"type": "Contact", "url": f"/services/data/v61.0/sobjects/Contact/{c1}"}
    assert r1["Account"]["attributes"]["type"] == "Account"
    assert r1["Account"]["BillingAddress"]["city"] == "Paris"
    assert r1["Account"]["BillingAddress"]["latitude"] == 48.8
    assert r1["Account"]["Headquarters__c"] == {"latitude": 1.5, "longitude": 2.5}
    assert r1["CreatedDate"] == "2024-05-01T09:30:00.000+0000"
    assert r1["HasOptedOutOfEmail"] is False and r1["Birthdate"] is None
    assert r2["Id"] == c2 and r2["Account"] is None
    assert list(r1) == ["attributes", "Id", "Account", "CreatedDate", "HasOptedOutOfEmail", "Birthdate"]


def test_polymorphic_relationship_types(org):
    acc = org.create("Account", {"Name": "Acme"})
    con = org.create("Contact", {"LastName": "L"})
    org.create("Task", {"WhatId": acc, "WhoId": con, "Subject": "Call"})
    q = org.compile("SELECT Subject, What.Name, Who.Name, Owner.Name FROM Task")
    rec = org.render_json(q, org.fetch(q, None, 10).rows)[0]
    assert rec["What"]["attributes"]["type"] == "Account" and rec["What"]["Name"] == "Acme"
    assert rec["Who"]["attributes"]["type"] == "Contact" and rec["Who"]["Name"] == "L"
    assert rec["Owner"]["attributes"]["type"] == "User"
    q = org.compile("SELECT Subject, What.Type FROM Task WHERE What.Type = 'Account'")
    assert [r[:2] for r in org.fetch(q, None, 10).rows] == [("Call", "Account")]
    assert org.count(org.compile("SELECT Id FROM Task WHERE What.Type = 'Opportunity'")) == 0
    # only the fields of the "Name" entity exist behind a polymorphic relationship
    assert err(org.compile, "SELECT What.Industry FROM Task").error_code == "INVALID_FIELD"
    assert err(org.compile, "SELECT What.Owner.Name FROM Task").error_code == "MALFORMED_QUERY"


def test_blobs_and_content_versions(org):
    acc = org.create("Account", {"Name": "Acme"})
    data = bytes(range(256)) * 10
    v1 = org.create(
        "ContentVersion",
        {
            "Title": "f",
            "PathOnClient": "f.pdf",
            "FirstPublishLocationId": acc,
            "VersionData": base64.b64encode(data).decode(),
        },
    )
    assert org.read_blob("ContentVersion", v1, "VersionData") == data
    rec = org.retrieve("ContentVersion", v1)
    assert rec["VersionData"] == f"/services/data/v59.0/sobjects/ContentVersion/{v1}/VersionData"
    assert rec["ContentSize"] == len(data) and rec["FileType"] == "PDF" and rec["IsLatest"] is True
    doc = rec["ContentDocumentId"]
    links = org.compile(f"SELECT LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{doc}'")
    assert [r[0] for r in org.fetch(links, None, 10).rows] == [acc]
    link = org.compile(f"SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId = '{acc}'")
    link_id = org.fetch(link, None, 10).rows[0][0]
    assert org.retrieve("ContentDocumentLink", link_id)["ContentDocumentId"] == doc  # no filter needed
    v2 = org.create(
        "ContentVersion",
        {
            "Title": "f2",
            "PathOnClient": "f.txt",
            "ContentDocumentId": doc,
            "VersionData": base64.b64encode(b"new").decode(),
        },
    )
    assert org.retrieve("ContentVersion", v1)["IsLatest"] is False
    assert org.retrieve("ContentDocument", doc)["LatestPublishedVersionId"] == v2
    assert err(org.read_blob, "ContentVersion", v1, "Title").status == 404
    note = org.create("Note", {"ParentId": acc, "Title": "n", "Body": "hello ✓"})
    assert org.read_blob("Note", note, "Body") == "hello ✓".encode()


def test_deleting_a_file_deletes_its_versions(org):
    v1 = org.create("ContentVersion", {"Title": "f", "PathOnClient": "f.txt", "VersionData": "aGVsbG8="})
    doc = org.retrieve("ContentVersion", v1)["ContentDocumentId"]
    assert err(org.delete, "ContentVersion", v1).error_code == "INVALID_TYPE_FOR_OPERATION"
    org.delete("ContentDocument", doc)
    assert list(org.true_records("ContentVersion")) == []
    assert err(org.read_blob, "ContentVersion", v1, "VersionData").status == 404
    org.undelete(doc)
    assert org.read_blob("ContentVersion", v1, "VersionData") == b"hello"


def test_formula_fields_do_not_bump_systemmodstamp(org):
    acc = org.create("Account", {"Name": "Old name", "AnnualRevenue": 1000, "NumberOfEmployees": 10})
    con = org.create("Contact", {"LastName": "L", "AccountId": acc})
    before = org.retrieve("Contact", con)
    assert before["Account_Name__c"] == "Old name"
    org.clock.advance(3600)
    org.update("Account", acc, {"Name": "New name"})
    after = org.retrieve("Contact", con)
    assert after["Account_Name__c"] == "New name"
    assert after["SystemModstamp"] == before["SystemModstamp"]
    a = org.retrieve("Account", acc)
    assert a["Revenue_Per_Employee__c"] == 100.0 and a["Days_Since_Created__c"] == 0
    org.clock.advance(3 * 86400)
    assert org.retrieve("Account", acc)["Days_Since_Created__c"] == 3
    # formula fields are not part of the stored truth
    assert "Account_Name__c" not in next(org.true_records("Contact"))


# ----------------------------------------------------------------------------- describe, schema, replication


def test_describe_and_global(org):
    g = org.describe_global()
    by = {s["name"]: s for s in g["sobjects"]}
    assert g["maxBatchSize"] == 200
    assert by["Account"]["keyPrefix"] == "001" and by["Account"]["replicateable"]
    assert not by["AccountChangeEvent"]["queryable"]
    assert by["AccountFeed"]["queryable"] and not by["AccountFeed"]["replicateable"]
    d = org.describe("Account")
    fields = {f["name"]: f for f in d["fields"]}
    assert (
        fields["BillingAddress"]["type"] == "address"
        and fields["BillingCity"]["compoundFieldName"] == "BillingAddress"
    )
    assert fields["External_Id__c"]["externalId"] and fields["Revenue_Per_Employee__c"]["calculated"]
    assert fields["Id"]["soapType"] == "tns:ID" and not fields["Id"]["createable"]
    assert any(
        c["childSObject"] == "Contact" and c["relationshipName"] == "Contacts"
        for c in d["childRelationships"]
    )
    task = {f["name"]: f for f in org.describe("Task")["fields"]}
    assert task["WhatId"]["polymorphicForeignKey"] and "Account" in task["WhatId"]["referenceTo"]
    assert err(org.describe, "Nope").status == 404


def test_add_field_changes_describe_and_persists(tmp_path):
    clock = Clock(T0, frozen=True)
    org = Org(tmp_path, clock=clock)
    acc = org.create("Account", {"Name": "a"})
    before = org.describe_modified_at("Account")
    clock.advance(120)
    org.add_field("Account", "Score__c", "int")
    assert org.describe_modified_at("Account") > before
    assert any(f["name"] == "Score__c" for f in org.describe("Account")["fields"])
    org.update("Account", acc, {"Score__c": 7})
    assert err(org.add_field, "Account", "Score__c", "int").error_code == "DUPLICATE_DEVELOPER_NAME"
    org_id = org.org_id
    org.close()
    again = Org(tmp_path, clock=clock)
    assert again.org_id == org_id
    assert next(again.true_records("Account"))["Score__c"] == 7
    new = again.create("Account", {"Name": "b"})
    assert new != acc
    again.close()


def test_get_updated_and_deleted_windows(org):
    a = org.create("Account", {"Name": "a"})
    org.clock.advance(600)
    b = org.create("Account", {"Name": "b"})
    org.clock.advance(600)
    org.delete("Account", a)
    org.clock.advance(600)
    now = org.clock.now()
    up = org.get_updated("Account", T0 + timedelta(seconds=300), now)
    assert up["ids"] == [b]
    assert up["latestDateCovered"].endswith("+0000")
    de = org.get_deleted("Account", T0, now)
    assert [d["id"] for d in de["deletedRecords"]] == [a]
    assert de["deletedRecords"][0]["deletedDate"] == (T0 + timedelta(seconds=1200)).strftime(
        "%Y-%m-%dT%H:%M:%S.000+0000"
    )
    assert (
        err(org.get_updated, "Account", now - timedelta(days=31), now).error_code
        == "INVALID_REPLICATION_DATE"
    )
    assert (
        err(org.get_updated, "Account", now, now - timedelta(hours=1)).error_code
        == "INVALID_REPLICATION_DATE"
    )
    assert err(org.get_updated, "ContentDocumentLink", T0, now).error_code == "CANNOT_REPLICATE"


def test_merge(org):
    m = org.create("Account", {"Name": "master"})
    v = org.create("Account", {"Name": "victim"})
    c = org.create("Contact", {"LastName": "child", "AccountId": v})
    org.clock.advance(60)
    org.merge("Account", m, [v])
    assert next(org.true_records("Contact"))["AccountId"] == m
    victim = [r for r in org.true_records("Account", include_deleted=True) if r["Id"] == v][0]
    assert victim["IsDeleted"] is True and victim["MasterRecordId"] == m
    assert next(org.true_records("Contact"))["SystemModstamp"] == T0 + timedelta(seconds=60)
    assert err(org.merge, "Contact", c, []).error_code == "INVALID_OPERATION"


def test_concurrent_writers_and_readers(org):
    import threading

    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(50):
                org.create("Account", {"Name": f"t{k}-{i}"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                q = org.compile("SELECT Id, Name FROM Account ORDER BY Name")
                org.render_json(q, org.fetch(q, None, 2000).rows)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)] + [
        threading.Thread(target=reader) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = [r["Id"] for r in org.true_records("Account")]
    assert len(ids) == 200 == len(set(ids))


def test_failed_operation_inside_a_transaction_is_undone_alone(org):
    with org.transaction():
        ok = org.create("Account", {"Name": "kept"})
        with pytest.raises(SalesforceError):
            org.create(
                "ContentVersion", {"Title": "t", "PathOnClient": "x.txt", "VersionData": "not base64!"}
            )
        with pytest.raises(SalesforceError):
            org.create("Account", {"Name": "x", "External_Id__c": None, "ParentId": "bad"})
    assert [r["Id"] for r in org.true_records("Account")] == [ok]
    with pytest.raises(RuntimeError), org.transaction():
        org.create("Account", {"Name": "rolled back"})
        raise RuntimeError
    assert [r["Name"] for r in org.true_records("Account")] == ["kept"]
    assert org.create("Account", {"Name": "after"}) != ok


def test_keyset_paging_with_case_insensitive_ties_and_nulls(org):
    names = ["b", "A", "a", "B", "a", "c"]
    with org.transaction():
        for i, n in enumerate(names):
            org.create("Account", {"Name": f"x{i}", "Site": n})
        org.create("Account", {"Name": "nosite"})
    for soql, expect_first in (
        ("SELECT Name, Site FROM Account ORDER BY Site", None),
        ("SELECT Name, Site FROM Account ORDER BY Site DESC", "c"),
        ("SELECT Name, Site FROM Account ORDER BY Site ASC NULLS LAST", "A"),
    ):
        q = org.compile(soql)
        got, after = [], None
        while True:
            page = org.fetch(q, after, 1)
            got.extend(r[:2] for r in page.rows)
            if page.next_after is None:
                break
            after = page.next_after
        assert got == [r[:2] for r in org.fetch(q, None, 100).rows]
        assert len(got) == 7 and got[0][1] == expect_first
        sites = [s.lower() for _, s in got if s is not None]
        assert sites == sorted(sites, reverse="DESC" in soql)


def test_replication_id_cap(org, monkeypatch):
    import salesforce_emulator.org as org_module

    monkeypatch.setattr(org_module, "REPLICATION_ID_LIMIT", 2)
    ids = [org.create("Account", {"Name": f"a{i}"}) for i in range(3)]
    org.clock.advance(120)
    now = org.clock.now()
    assert err(org.get_updated, "Account", T0, now).error_code == "EXCEEDED_ID_LIMIT"
    for rid in ids:
        org.delete("Account", rid)
    org.clock.advance(120)
    assert err(org.get_deleted, "Account", T0, org.clock.now()).error_code == "EXCEEDED_ID_LIMIT"
    monkeypatch.setattr(org_module, "REPLICATION_ID_LIMIT", 3)
    assert len(org.get_deleted("Account", T0, org.clock.now())["deletedRecords"]) == 3
