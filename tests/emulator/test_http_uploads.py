"""Blob uploads over REST: multipart/form-data (a JSON entity part + a binary part) and JSON base64
bodies, with Salesforce's size limits (lowered per server in these tests)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from salesforce_emulator.client_session import emulator_session
from salesforce_emulator.server import EmulatorServer

from .conftest import api, auth, make_org

# bytes that would break a naive text parser: CRLFs, dashes like a boundary, NULs, invalid UTF-8
NASTY = b"\r\n--not-the-boundary\r\n\x00\xff\xfe" + os.urandom(3000) + b"\r\n\r\n--"


@pytest.fixture
def small_limits() -> Iterator[EmulatorServer]:
    org = make_org(scale=100)
    try:
        with EmulatorServer.start(
            org,
            max_content_version_bytes=10_000,
            max_blob_bytes=5_000,
            max_json_body_bytes=20_000,
            max_base64_chars=8_000,
        ) as emu:
            yield emu
    finally:
        org.close()


def _multipart(
    emu: EmulatorServer, sobject: str, entity_name: str, entity: dict, field: str, data: bytes
) -> Any:
    files = {
        entity_name: (None, json.dumps(entity), "application/json"),
        field: ("upload.bin", data, "application/octet-stream"),
    }
    return emulator_session(emu.facts).post(f"{api(emu)}/sobjects/{sobject}", files=files, headers=auth(emu))


def test_content_version_multipart_creates_document_and_bytes(emu):
    account = emu.org.create("Account", {"Name": "Multipart Upload Co"})
    entity = {"Title": "Q1 report, final", "PathOnClient": "q1.pdf", "FirstPublishLocationId": account}
    resp = _multipart(emu, "ContentVersion", "entity_content", entity, "VersionData", NASTY)
    assert resp.status_code == 201, resp.text
    cv = resp.json()["id"]
    assert emu.org.read_blob("ContentVersion", cv, "VersionData") == NASTY
    row = emu.org.retrieve("ContentVersion", cv, ["ContentDocumentId", "ContentSize", "FileType", "Title"])
    assert (
        row["ContentSize"] == len(NASTY) and row["FileType"] == "PDF" and row["Title"] == "Q1 report, final"
    )
    links = emu.org.fetch(
        emu.org.compile(
            f"SELECT LinkedEntityId FROM ContentDocumentLink WHERE ContentDocumentId = '{row['ContentDocumentId']}'"
        ),
        None,
        10,
    ).rows
    assert [r[0] for r in links] == [account]
    # downloadable through the blob URL as the same bytes
    got = emulator_session(emu.facts).get(
        f"{api(emu)}/sobjects/ContentVersion/{cv}/VersionData", headers=auth(emu)
    )
    assert got.content == NASTY


@pytest.mark.parametrize("sobject", ["Attachment", "Document"])
def test_attachment_and_document_multipart_use_entity_document(emu, sobject):
    account = emu.org.create("Account", {"Name": f"{sobject} holder"})
    folder = emu.org.user_id
    entity = (
        {"Name": "scan.bin", "ParentId": account, "ContentType": "application/octet-stream"}
        if sobject == "Attachment"
        else {"Name": "Brochure", "DeveloperName": f"Brochure_{account[-6:]}", "FolderId": folder}
    )
    resp = _multipart(emu, sobject, "entity_document", entity, "Body", NASTY)
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    assert emu.org.read_blob(sobject, rid, "Body") == NASTY
    assert emu.org.retrieve(sobject, rid, ["BodyLength"])["BodyLength"] == len(NASTY)


def test_multipart_with_a_wrong_entity_part_name_is_refused(emu):
    resp = _multipart(
        emu, "ContentVersion", "entity_document", {"PathOnClient": "a.txt"}, "VersionData", b"x"
    )
    assert resp.status_code == 400
    assert resp.json()[0]["errorCode"] == "MALFORMED_REQUEST"
    assert "entity_content" in resp.json()[0]["message"]


def test_multipart_update_replaces_the_body(emu):
    account = emu.org.create("Account", {"Name": "Patch holder"})
    rid = emu.org.create("Attachment", {"Name": "a.txt", "ParentId": account, "Body": b"old"})
    files = {
        "entity_document": (None, json.dumps({"Name": "b.txt"}), "application/json"),
        "Body": ("b.txt", b"new bytes", "text/plain"),
    }
    resp = emulator_session(emu.facts).patch(
        f"{api(emu)}/sobjects/Attachment/{rid}", files=files, headers=auth(emu)
    )
    assert resp.status_code == 204, resp.text
    assert emu.org.read_blob("Attachment", rid, "Body") == b"new bytes"
    assert emu.org.retrieve("Attachment", rid, ["Name"])["Name"] == "b.txt"


def test_multipart_size_limits_per_object(small_limits):
    emu = small_limits
    ok = _multipart(
        emu, "ContentVersion", "entity_content", {"PathOnClient": "a.bin"}, "VersionData", b"a" * 10_000
    )
    assert ok.status_code == 201, ok.text
    big = _multipart(
        emu, "ContentVersion", "entity_content", {"PathOnClient": "a.bin"}, "VersionData", b"a" * 10_001
    )
    assert big.status_code == 400 and big.json()[0]["errorCode"] == "FILE_SIZE_LIMIT_EXCEEDED"
    account = emu.org.create("Account", {"Name": "Limits"})
    # 500 MB (here 5,000 bytes) for the other objects, even though ContentVersion takes more
    att = {"Name": "a.bin", "ParentId": account}
    assert _multipart(emu, "Attachment", "entity_document", att, "Body", b"a" * 5_000).status_code == 201
    refused = _multipart(emu, "Attachment", "entity_document", att, "Body", b"a" * 5_001)
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "FILE_SIZE_LIMIT_EXCEEDED"


def test_json_base64_body_limits(small_limits):
    emu = small_limits
    session = emulator_session(emu.facts)
    url = f"{api(emu)}/sobjects/ContentVersion"
    fits = base64.b64encode(b"x" * 6_000).decode()  # 8,000 base64 characters
    resp = session.post(url, json={"PathOnClient": "a.txt", "VersionData": fits}, headers=auth(emu))
    assert resp.status_code == 201, resp.text
    too_long = base64.b64encode(b"x" * 6_003).decode()
    resp = session.post(url, json={"PathOnClient": "a.txt", "VersionData": too_long}, headers=auth(emu))
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "STRING_TOO_LONG"
    body = {"PathOnClient": "a.txt", "Description": "d" * 20_001}
    resp = session.post(url, json=body, headers=auth(emu))
    assert resp.status_code == 400 and resp.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert "Maximum size of request" in resp.json()[0]["message"]


def test_multipart_for_an_object_without_a_blob_field_is_refused(emu):
    resp = _multipart(emu, "Account", "entity_document", {"Name": "x"}, "Body", b"x")
    assert resp.status_code == 415


@pytest.mark.parametrize(("sobject", "field"), [("ContentVersion", "VersionData"), ("Attachment", "Body")])
def test_orgvault_writer_uploads_multipart(fresh_emulator, emulator_source, sobject, field):
    """orgvault's restore writer sends files as multipart: with JSON bodies capped at 1 KB by this
    emulator, a 20 KB upload can only succeed that way (a base64 fallback would be refused)."""
    from orgvault.adapters.salesforce_writer import SalesforceWriter

    emu = fresh_emulator(scale=100, max_json_body_bytes=1_000)
    writer = SalesforceWriter(emulator_source(emu), bulk_poll_seconds=0.0, sleep=lambda _s: None)
    parent = emu.org.create("Account", {"Name": "Writer target"})
    values = (
        {"Title": "restored", "PathOnClient": "restored.bin", "FirstPublishLocationId": parent}
        if sobject == "ContentVersion"
        else {"Name": "restored.bin", "ParentId": parent}
    )
    data = NASTY * 6
    result = writer.upload_file(sobject, field, values, data)
    assert result.success, result.errors
    assert emu.org.read_blob(sobject, result.id, field) == data
