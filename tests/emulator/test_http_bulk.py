"""Bulk API 2.0 query and ingest jobs, through simple-salesforce's bulk2 and raw HTTP."""

from __future__ import annotations

import csv
import gzip
import io

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceOperationError

from salesforce_emulator.server import EmulatorServer

from .conftest import api, auth

ACCOUNT_SOQL = "SELECT Id, Name, BillingCity, NumberOfEmployees, Owner.Name FROM Account"


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _create_job(emu, session, soql, operation="query", **extra):
    resp = session.post(
        f"{api(emu)}/jobs/query",
        json={"operation": operation, "query": soql, **extra},
        headers={**auth(emu), "Accept": "text/csv"},
    )
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp


def _wait(emu, session, job_id, kind="query"):
    for _ in range(200):
        info = session.get(f"{api(emu)}/jobs/{kind}/{job_id}", headers=auth(emu)).json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
    raise AssertionError("job never finished")


def test_bulk2_query_through_simple_salesforce_matches_the_org(sf, emu):
    pages = list(sf.bulk2.Account.query(ACCOUNT_SOQL, max_records=100, wait=0))
    rows = [r for page in pages for r in _rows(page)[1:]]
    assert all(
        _rows(page)[0] == ["Id", "Name", "BillingCity", "NumberOfEmployees", "Owner.Name"] for page in pages
    )
    expected = emu.org.count(emu.org.compile("SELECT COUNT() FROM Account"))
    assert len(rows) == expected and len({r[0] for r in rows}) == expected
    assert len(pages) == -(-expected // 100)


def test_bulk2_download_and_query_all(sf, emu, tmp_path):
    results = sf.bulk2.Account.download(ACCOUNT_SOQL, path=str(tmp_path), max_records=150, wait=0)
    total = sum(r["number_of_records"] for r in results)
    assert total == emu.org.count(emu.org.compile("SELECT COUNT() FROM Account"))
    assert results[-1]["locator"] == ""
    victim = sf.Account.create({"Name": "Bulk queryAll victim"})["id"]
    sf.Account.delete(victim)
    all_rows = [
        r for page in sf.bulk2.Account.query_all("SELECT Id FROM Account", wait=0) for r in _rows(page)[1:]
    ]
    assert victim in {r[0] for r in all_rows}
    live_rows = [
        r for page in sf.bulk2.Account.query("SELECT Id FROM Account", wait=0) for r in _rows(page)[1:]
    ]
    assert victim not in {r[0] for r in live_rows}


def test_results_headers_locator_paging_and_repeat(emu, session, paging_leads):
    job = _create_job(emu, session, "SELECT Id, LastName FROM Lead WHERE LastName LIKE 'Pager%'").json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750")
    info = _wait(emu, session, job["id"])
    total = info["numberRecordsProcessed"]
    url = f"{api(emu)}/jobs/query/{job['id']}/results"
    assert total == paging_leads
    first = session.get(url, params={"maxRecords": 1500}, headers=auth(emu))
    assert first.headers["Sforce-NumberOfRecords"] == "1500"
    locator = first.headers["Sforce-Locator"]
    assert locator != "null"
    second = session.get(url, params={"maxRecords": 1500, "locator": locator}, headers=auth(emu))
    again = session.get(url, params={"maxRecords": 1500, "locator": locator}, headers=auth(emu))
    assert second.content == again.content
    assert second.headers["Sforce-Locator"] == "null" and second.headers["Sforce-NumberOfRecords"] == "501"
    first_ids = {r[0] for r in _rows(first.text)[1:]}
    second_ids = {r[0] for r in _rows(second.text)[1:]}
    assert len(first_ids | second_ids) == total and not first_ids & second_ids
    last = session.get(url, headers=auth(emu))
    assert last.headers["Sforce-Locator"] == "null"
    assert last.headers["Sforce-NumberOfRecords"] == str(total)
    assert len(_rows(last.text)) == total + 1
    bad = session.get(url, params={"locator": "!!!"}, headers=auth(emu))
    assert bad.status_code == 400


def test_results_are_gzipped_when_asked(emu, session):
    job = _create_job(emu, session, "SELECT Id, Name FROM Account").json()
    _wait(emu, session, job["id"])
    url = f"{api(emu)}/jobs/query/{job['id']}/results"
    raw = session.get(url, headers={**auth(emu), "Accept-Encoding": "gzip"}, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(raw.raw.read(decode_content=False))
    plain = session.get(url, headers={**auth(emu), "Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert body == plain.content


def test_crlf_line_ending(emu, session):
    job = _create_job(emu, session, "SELECT Id, Name FROM Account", lineEnding="CRLF").json()
    assert job["lineEnding"] == "CRLF"
    _wait(emu, session, job["id"])
    body = session.get(f"{api(emu)}/jobs/query/{job['id']}/results", headers=auth(emu)).content
    assert body.startswith(b'"Id","Name"\r\n') and body.count(b"\r\n") >= 2
    bad = _create_job(emu, session, "SELECT Id FROM Account", columnDelimiter="WHATEVER")
    assert bad.status_code == 400


def test_job_not_complete_is_412_and_states_progress(shared_org):
    with EmulatorServer.start(shared_org, bulk_delay=3600, bulk_clock="org") as emu:
        from salesforce_emulator.client_session import emulator_session

        session = emulator_session(emu.facts)
        job = _create_job(emu, session, "SELECT Id FROM Account").json()
        url = f"{api(emu)}/jobs/query/{job['id']}"
        early = session.get(f"{url}/results", headers=auth(emu))
        assert early.status_code == 412 and early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
        assert session.get(url, headers=auth(emu)).json()["state"] == "UploadComplete"
        emu.org.clock.advance(1800)
        assert session.get(url, headers=auth(emu)).json()["state"] == "InProgress"
        emu.org.clock.advance(1800)
        info = session.get(url, headers=auth(emu)).json()
        assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] > 0
        assert session.get(f"{url}/results", headers=auth(emu)).status_code == 200
        # abort another job, then delete it; list shows jobs
        other = _create_job(emu, session, "SELECT Id FROM Contact").json()
        aborted = session.patch(
            f"{api(emu)}/jobs/query/{other['id']}", json={"state": "Aborted"}, headers=auth(emu)
        )
        assert aborted.json()["state"] == "Aborted"
        listed = session.get(f"{api(emu)}/jobs/query", headers=auth(emu)).json()
        assert {job["id"], other["id"]} <= {j["id"] for j in listed["records"]}
        assert session.delete(f"{api(emu)}/jobs/query/{other['id']}", headers=auth(emu)).status_code == 204
        assert session.get(f"{api(emu)}/jobs/query/{other['id']}", headers=auth(emu)).status_code == 404


@pytest.mark.parametrize(
    "soql, code",
    [
        ("SELECT Id, BillingAddress FROM Account", None),
        ("SELECT Id, VersionData FROM ContentVersion", None),
        ("SELECT FIELDS(ALL) FROM Account LIMIT 200", None),
        ("SELECT Id FROM Attachment", "INVALIDENTITY"),
        ("SELECT COUNT() FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT COUNT() FROM Lead WHERE LastName LIKE 'Pager%'", "FUNCTIONALITY_NOT_ENABLED"),
    ],
)
def test_bulk_refusals_come_from_the_org(emu, session, soql, code):
    resp = _create_job(emu, session, soql)
    assert resp.status_code == 400
    error = resp.json()[0]
    try:
        emu.org.compile(soql, for_bulk=True)
    except Exception as exc:  # noqa: BLE001
        assert error["errorCode"] == exc.error_code
    else:
        raise AssertionError("the org accepted a query Bulk must refuse")
    if code:
        assert error["errorCode"] == code


def test_bulk_query_through_simple_salesforce_reports_refusal(sf):
    with pytest.raises(SalesforceMalformedRequest):
        list(sf.bulk2.Account.query("SELECT Id, BillingAddress FROM Account", wait=0))


def test_ingest_insert_update_upsert_delete(sf, emu):
    inserted = sf.bulk2.Account.insert(
        records=[
            {"Name": "Ingest A", "NumberOfEmployees": "5", "External_Id__c": "ING-A"},
            {"Name": "Ingest B", "NumberOfEmployees": "7", "External_Id__c": "ING-B"},
            {"NumberOfEmployees": "1"},  # no Name: fails
        ],
        wait=0,
    )[0]
    assert inserted["numberRecordsProcessed"] == 3 and inserted["numberRecordsFailed"] == 1
    job_id = inserted["job_id"]
    ok = _rows(sf.bulk2.Account.get_successful_records(job_id))
    assert ok[0][:2] == ["sf__Id", "sf__Created"] and len(ok) == 3 and ok[1][1] == "true"
    failed = _rows(sf.bulk2.Account.get_failed_records(job_id))
    assert failed[0][:2] == ["sf__Id", "sf__Error"] and failed[1][1].startswith("REQUIRED_FIELD_MISSING")
    unprocessed = _rows(sf.bulk2.Account.get_unprocessed_records(job_id))
    assert len(unprocessed) == 1  # header only
    ids = {row[ok[0].index("Name")]: row[0] for row in ok[1:]}

    # empty cell = leave as is; #N/A = set null
    sf.bulk2.Account.update(
        records=[
            {"Id": ids["Ingest A"], "Name": "Ingest A2", "NumberOfEmployees": ""},
            {"Id": ids["Ingest B"], "Name": "", "NumberOfEmployees": "#N/A"},
        ],
        wait=0,
    )
    a, b = sf.Account.get(ids["Ingest A"]), sf.Account.get(ids["Ingest B"])
    assert (a["Name"], a["NumberOfEmployees"]) == ("Ingest A2", 5)
    assert (b["Name"], b["NumberOfEmployees"]) == ("Ingest B", None)

    up = sf.bulk2.Account.upsert(
        records=[
            {"External_Id__c": "ING-A", "Name": "Ingest A3"},
            {"External_Id__c": "ING-C", "Name": "Ingest C"},
        ],
        external_id_field="External_Id__c",
        wait=0,
    )[0]
    created = {r[0]: r[1] for r in _rows(sf.bulk2.Account.get_successful_records(up["job_id"]))[1:]}
    assert created[ids["Ingest A"]] == "false" and list(created.values()).count("true") == 1
    assert sf.Account.get(ids["Ingest A"])["Name"] == "Ingest A3"

    deleted = sf.bulk2.Account.delete(records=[{"Id": ids["Ingest A"]}, {"Id": ids["Ingest B"]}], wait=0)[0]
    assert deleted["numberRecordsFailed"] == 0
    assert sf.query(f"SELECT COUNT() FROM Account WHERE Id = '{ids['Ingest A']}'")["totalSize"] == 0


def test_ingest_hard_delete_and_bad_jobs(emu, session, sf):
    rid = sf.Account.create({"Name": "Hard delete me"})["id"]
    sf.bulk2.Account.hard_delete(records=[{"Id": rid}], wait=0)
    assert sf.query_all(f"SELECT Id FROM Account WHERE Id = '{rid}'", include_deleted=True)["totalSize"] == 0
    resp = session.post(
        f"{api(emu)}/jobs/ingest", json={"object": "Account", "operation": "explode"}, headers=auth(emu)
    )
    assert resp.status_code == 400
    resp = session.post(
        f"{api(emu)}/jobs/ingest", json={"object": "Nope__c", "operation": "insert"}, headers=auth(emu)
    )
    assert resp.status_code == 404
    resp = session.post(
        f"{api(emu)}/jobs/ingest",
        json={"object": "Account", "operation": "upsert", "externalIdFieldName": "Name"},
        headers=auth(emu),
    )
    assert resp.status_code == 400


def test_ingest_abort_leaves_records_unprocessed(emu, session):
    job = session.post(
        f"{api(emu)}/jobs/ingest", json={"object": "Account", "operation": "insert"}, headers=auth(emu)
    ).json()
    assert job["state"] == "Open"
    put = session.put(
        f"{api(emu)}/jobs/ingest/{job['id']}/batches",
        data=b'"Name"\n"Never"\n',
        headers={**auth(emu), "Content-Type": "text/csv"},
    )
    assert put.status_code == 201
    session.patch(f"{api(emu)}/jobs/ingest/{job['id']}", json={"state": "Aborted"}, headers=auth(emu))
    rows = _rows(
        session.get(f"{api(emu)}/jobs/ingest/{job['id']}/unprocessedrecords", headers=auth(emu)).text
    )
    assert rows == [["Name"], ["Never"]]


def test_bulk_fail_fault_fails_query_and_ingest_jobs(sf, emu, session):
    emu.faults.bulk_fail = True
    with pytest.raises(SalesforceOperationError):
        list(sf.bulk2.Account.query("SELECT Id FROM Account", wait=0))
    with pytest.raises(SalesforceOperationError):
        sf.bulk2.Account.insert(records=[{"Name": "never"}], wait=0)
    job = _create_job(emu, session, "SELECT Id FROM Account").json()
    info = _wait(emu, session, job["id"])
    assert info["state"] == "Failed" and info["errorMessage"]
    resp = session.get(f"{api(emu)}/jobs/query/{job['id']}/results", headers=auth(emu))
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "INVALIDJOBSTATE"


def test_a_job_is_only_reachable_through_its_own_api_version(emu, session):
    job = _create_job(emu, session, "SELECT Id FROM Account").json()
    assert job["apiVersion"] == 59.0
    same = session.get(f"{api(emu, '59.0')}/jobs/query/{job['id']}", headers=auth(emu))
    assert same.status_code == 200
    for path in ("", "/results"):
        other = session.get(f"{api(emu, '58.0')}/jobs/query/{job['id']}{path}", headers=auth(emu))
        assert other.status_code == 409, path
        body = other.json()
        assert isinstance(body, list) and body[0]["errorCode"] == "API_ERROR" and "59.0" in body[0]["message"]
    ingest = session.post(
        f"{api(emu, '60.0')}/jobs/ingest",
        json={"object": "Account", "operation": "insert"},
        headers=auth(emu),
    ).json()
    upload = session.put(
        f"{api(emu, '59.0')}/jobs/ingest/{ingest['id']}/batches",
        data=b"Name\nWrong version\n",
        headers={**auth(emu), "Content-Type": "text/csv"},
    )
    assert upload.status_code == 409
    assert (
        session.delete(f"{api(emu, '60.0')}/jobs/ingest/{ingest['id']}", headers=auth(emu)).status_code == 204
    )
