"""Files over REST: deleting a ContentDocument takes all its ContentVersions and links with it, and
undelete brings every one of them back (same ids, same bytes), as Salesforce does."""

from __future__ import annotations

from typing import Any

from salesforce_emulator.client_session import emulator_session

from .conftest import api, auth


def _q(session: Any, emu: Any, soql: str, *, all_rows: bool = False) -> list[dict]:
    resp = session.get(
        f"{api(emu)}/{'queryAll' if all_rows else 'query'}", params={"q": soql}, headers=auth(emu)
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["records"]


def test_deleting_a_content_document_deletes_versions_and_links_and_undelete_restores_them(private_emu):
    emu = private_emu
    session = emulator_session(emu.facts)
    org = emu.org
    acc = org.create("Account", {"Name": "Files holder"})
    opp = org.create("Opportunity", {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-01-01"})
    v1 = org.create(
        "ContentVersion",
        {"Title": "Plan", "PathOnClient": "plan.txt", "VersionData": b"one", "FirstPublishLocationId": acc},
    )
    doc = org.retrieve("ContentVersion", v1, ["ContentDocumentId"])["ContentDocumentId"]
    v2 = org.create(
        "ContentVersion", {"PathOnClient": "plan.txt", "VersionData": b"two", "ContentDocumentId": doc}
    )
    org.create("ContentDocumentLink", {"ContentDocumentId": doc, "LinkedEntityId": opp, "ShareType": "V"})
    versions_soql = f"SELECT Id, IsDeleted FROM ContentVersion WHERE ContentDocumentId = '{doc}' ORDER BY Id"
    links_soql = (
        f"SELECT Id, LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{doc}' ORDER BY Id"
    )
    doc_soql = f"SELECT Id, IsDeleted, LatestPublishedVersionId FROM ContentDocument WHERE Id = '{doc}'"
    links_before = [(r["Id"], r["LinkedEntityId"]) for r in _q(session, emu, links_soql)]
    assert sorted(e for _, e in links_before) == sorted([acc, opp])

    resp = session.delete(f"{api(emu)}/sobjects/ContentDocument/{doc}", headers=auth(emu))
    assert resp.status_code == 204, resp.text
    assert _q(session, emu, versions_soql) == []
    assert [(r["Id"], r["IsDeleted"]) for r in _q(session, emu, versions_soql, all_rows=True)] == [
        (v1, True),
        (v2, True),
    ]
    assert _q(session, emu, links_soql) == []
    blob = session.get(f"{api(emu)}/sobjects/ContentVersion/{v2}/VersionData", headers=auth(emu))
    assert blob.status_code == 404
    # the document in the recycle bin still names its latest version (nothing was detached from it)
    [deleted_doc] = _q(session, emu, doc_soql, all_rows=True)
    assert deleted_doc["IsDeleted"] is True and deleted_doc["LatestPublishedVersionId"] == v2

    resp = session.post(
        f"{emu.facts.instance_url}/__emulator/undelete", json={"ids": [doc]}, headers=auth(emu)
    )
    assert resp.status_code == 200, resp.text
    assert [(r["Id"], r["IsDeleted"]) for r in _q(session, emu, versions_soql)] == [(v1, False), (v2, False)]
    assert [(r["Id"], r["LinkedEntityId"]) for r in _q(session, emu, links_soql)] == links_before
    [live_doc] = _q(session, emu, doc_soql)
    assert live_doc["LatestPublishedVersionId"] == v2
    blob = session.get(f"{api(emu)}/sobjects/ContentVersion/{v2}/VersionData", headers=auth(emu))
    assert blob.status_code == 200 and blob.content == b"two"
    assert org.read_blob("ContentVersion", v1, "VersionData") == b"one"
