"""Helpers for the restore/browse integration tests (no tests here).

``hierarchy_org()`` builds a small, hand-made emulator org whose shape the tests know exactly: two
Accounts (one the parent of the other: a self reference), Contacts (one reporting to another),
Opportunities with line items, Cases (one a child of another) with comments, Tasks with polymorphic
WhoId/WhatId, a file (ContentVersion published to the Account: a ContentDocumentLink), an Attachment,
and unrelated records around them. ``restore_kit(app, org)`` wires the restore service.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date
from typing import Any

from orgvault.adapters.salesforce_writer import SalesforceWriter
from orgvault.services.browse import Snapshots
from orgvault.services.restore import RestoreService
from orgvault.services.restore_journal import RestoreJournal


def start_emulator(org: Any, **options: Any) -> Any:
    import salesforce_emulator

    server_cls = getattr(salesforce_emulator, "EmulatorServer", None)
    if server_cls is None:  # older export list
        from salesforce_emulator.server import EmulatorServer as server_cls
    return server_cls.start(org, **options)


@dataclass
class Hierarchy:
    account: str
    parent_account: str
    contacts: list[str]
    opportunities: list[str]
    line_items: list[str]
    cases: list[str]
    comments: list[str]
    tasks: list[str]
    version: str
    document: str
    attachment: str
    other_accounts: list[str]


FILE_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 40 + "Überweisung ✓".encode()


def hierarchy_org(org: Any, *, extra_accounts: int = 5) -> Hierarchy:
    c = org.create
    parent = c("Account", {"Name": "Globex Holding", "Industry": "Finance", "External_Id__c": "GLX-0"})
    acc = c(
        "Account",
        {
            "Name": 'Globex, "West"\nDivision',
            "ParentId": parent,
            "Industry": "Energy",
            "AnnualRevenue": 1250000.5,
            "NumberOfEmployees": 42,
            "BillingCity": "Zürich",
            "External_Id__c": "GLX-1",
            "Customer_Since__c": "2019-03-04",
            "Active__c": True,
        },
    )
    others = [
        c("Account", {"Name": f"Other {i}", "External_Id__c": f"OTH-{i}"}) for i in range(extra_accounts)
    ]
    boss = c(
        "Contact", {"LastName": "Boss", "FirstName": "Ada", "AccountId": acc, "Email": "ada@globex.test"}
    )
    minion = c("Contact", {"LastName": "Minion", "AccountId": acc, "ReportsToId": boss, "Title": "Engineer"})
    c("Contact", {"LastName": "Elsewhere", "AccountId": others[0]})
    prod = c("Product2", {"Name": "Widget", "IsActive": True})
    pb = c("Pricebook2", {"Name": "Standard", "IsActive": True})
    pbe = c("PricebookEntry", {"Pricebook2Id": pb, "Product2Id": prod, "UnitPrice": 10.0, "IsActive": True})
    opps = [
        c(
            "Opportunity",
            {
                "Name": f"Deal {i}",
                "AccountId": acc,
                "StageName": "Prospecting",
                "CloseDate": str(date(2026, 1, 10 + i)),
                "Amount": 1000.0 * (i + 1),
            },
        )
        for i in range(2)
    ]
    olis = [
        c(
            "OpportunityLineItem",
            {
                "OpportunityId": o,
                "PricebookEntryId": pbe,
                "Product2Id": prod,
                "Quantity": 2.0 + i,
                "UnitPrice": 10.0,
            },
        )
        for i, o in enumerate(opps)
    ]
    case1 = c("Case", {"Subject": "Broken", "AccountId": acc, "ContactId": boss, "Priority": "High"})
    case2 = c("Case", {"Subject": "Still broken", "AccountId": acc, "ParentId": case1})
    comments = [
        c("CaseComment", {"ParentId": cs, "CommentBody": f"comment on {n}", "IsPublished": True})
        for n, cs in (("one", case1), ("two", case2))
    ]
    tasks = [
        c("Task", {"Subject": "Call", "WhatId": opps[0], "WhoId": minion}),
        c("Task", {"Subject": "Other", "WhatId": acc}),
    ]
    ver = c(
        "ContentVersion",
        {
            "Title": "Contract",
            "PathOnClient": "contract.pdf",
            "VersionData": base64.b64encode(FILE_BYTES).decode(),
            "FirstPublishLocationId": acc,
        },
    )
    doc = org.retrieve("ContentVersion", ver)["ContentDocumentId"]
    att = c(
        "Attachment",
        {
            "ParentId": acc,
            "Name": "notes.txt",
            "ContentType": "text/plain",
            "Body": base64.b64encode(b"attached notes\n" * 50).decode(),
        },
    )
    return Hierarchy(
        acc, parent, [boss, minion], opps, olis, [case1, case2], comments, tasks, ver, doc, att, others
    )


def delete_hierarchy(org: Any, h: Hierarchy) -> None:
    """What a careless admin does: delete the account's tasks, cases, opportunities, contacts, the
    file, then the account (line items, comments, attachment and file link go with their parents)."""
    for t in h.tasks:
        org.delete("Task", t)
    for cs in reversed(h.cases):
        org.delete("Case", cs)
    for o in h.opportunities:
        org.delete("Opportunity", o)
    for ct in reversed(h.contacts):
        org.delete("Contact", ct)
    org.delete("ContentDocument", h.document)
    org.delete("Account", h.account)


def restore_kit(app: Any, org: str, *, target_conn: Any = None, **service: Any) -> tuple[RestoreService, Any]:
    conn = app.catalog.get_org(org)
    snaps = Snapshots(app.catalog, app.vault)
    writer = SalesforceWriter(
        app.source_for(target_conn or conn), bulk_poll_seconds=0.0, sleep=lambda _s: None
    )
    journal = RestoreJournal(app.store, app.keys, org, conn.key_ref)
    return RestoreService(snaps, writer, journal, key_ref=conn.key_ref, **service), writer
