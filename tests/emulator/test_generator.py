"""Seeded generator: determinism, realistic shape, relationships, file sizes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from salesforce_emulator import Clock, Org, SalesforceError
from salesforce_emulator.ids import is_valid_id

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def dump(org: Org) -> dict:
    out = {}
    for name in org.object_names():
        obj = org.objects[name.lower()]
        if obj.has_table:
            out[name] = list(org.true_records(name, include_deleted=True))
    return out


@pytest.fixture(scope="module")
def small():
    org = Org.generate(scale=500, seed=11, clock=Clock(T0, frozen=True))
    yield org
    org.close()


def test_same_seed_same_data_other_seed_other_data(small):
    again = Org.generate(scale=500, seed=11, clock=Clock(T0, frozen=True))
    other = Org.generate(scale=500, seed=12, clock=Clock(T0, frozen=True))
    try:
        a, b, c = dump(small), dump(again), dump(other)
        assert a == b
        assert a["Account"] != c["Account"]
        assert small.org_id == again.org_id != other.org_id
    finally:
        again.close()
        other.close()


def test_scale_and_relationships(small):
    counts = {
        n: sum(1 for _ in small.true_records(n))
        for n in small.object_names()
        if small.objects[n.lower()].has_table
    }
    assert 450 <= sum(counts.values()) <= 650
    for name in (
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "Case",
        "Task",
        "Event",
        "Project__c",
        "Milestone__c",
        "ContentVersion",
        "Attachment",
        "Document",
        "Note",
        "User",
    ):
        assert counts[name] > 0, name
    accounts = {r["Id"] for r in small.true_records("Account")}
    contacts = list(small.true_records("Contact"))
    assert all(c["AccountId"] in accounts for c in contacts if c["AccountId"])
    assert sum(1 for c in contacts if c["AccountId"]) > len(contacts) * 0.8
    assert any(r["ParentId"] for r in small.true_records("Account"))  # self-lookup used
    assert all(is_valid_id(r["Id"]) for r in small.true_records("Opportunity"))
    projects = {r["Id"] for r in small.true_records("Project__c")}
    assert all(m["Project__c"] in projects for m in small.true_records("Milestone__c"))
    whats = {r["WhatId"][:3] for r in small.true_records("Task") if r["WhatId"]}
    assert len(whats) >= 2  # polymorphic references point at several objects


def test_timestamps_are_consistent(small):
    for r in small.true_records("Account"):
        assert r["CreatedDate"] <= r["LastModifiedDate"] <= T0
        assert r["SystemModstamp"] == r["LastModifiedDate"]
    created = [r["CreatedDate"] for r in small.true_records("Contact")]
    assert created == sorted(created)  # ids grow with creation time, as in a real org


def test_hostile_text_and_compound_data_present(small):
    names = [r["Name"] for r in small.true_records("Account")] + [
        r["Description"] or "" for r in small.true_records("Account")
    ]
    text = "\n".join(names)
    assert '"' in text and "," in text and "\n" in text
    assert any(ord(ch) > 0xFFFF for ch in text) or any("\u0590" <= ch <= "\u06ff" for ch in text)
    assert any(r["BillingLatitude"] is not None for r in small.true_records("Account"))
    assert max(len(r["Description"] or "") for r in small.true_records("Account")) > 10_000


def test_files_are_bounded_at_small_scale(small):
    total = 0
    for name, field in (("ContentVersion", "VersionData"), ("Attachment", "Body"), ("Document", "Body")):
        for r in small.true_records(name):
            assert r[field] is not None
            total += len(r[field])
        if name == "ContentVersion":
            for r in small.true_records(name):
                assert r["ContentSize"] == len(r["VersionData"])
    assert 0 < total < 5_000_000


def test_generated_org_is_queryable_everywhere(small):
    for name in small.object_names():
        obj = small.objects[name.lower()]
        if not obj.queryable:
            continue
        fields = ", ".join(f.name for f in obj.fields)
        where = ""
        if name == "ContentDocumentLink":  # Salesforce refuses it unfiltered
            docs = ", ".join(f"'{r['Id']}'" for r in small.true_records("ContentDocument"))
            where = f" WHERE ContentDocumentId IN ({docs})"
        q = small.compile(f"SELECT {fields} FROM {name}{where}", include_deleted=True)
        rows = small.fetch(q, None, 2000).rows
        small.render_json(q, rows)
        if obj.bulk_supported:
            bulk_fields = ", ".join(
                f.name for f in obj.fields if f.type not in ("address", "location", "base64")
            )
            qb = small.compile(f"SELECT {bulk_fields} FROM {name}{where}", for_bulk=True)
            small.render_csv(qb, small.fetch(qb, None, 2000).rows, header=True)


def test_field_history_has_rows_but_no_systemmodstamp(small):
    rows = list(small.true_records("AccountHistory"))
    assert rows and all(r["CreatedDate"] is not None for r in rows)
    fields = {f["name"] for f in small.describe("AccountHistory")["fields"]}
    assert "SystemModstamp" not in fields and "CreatedDate" in fields
    with pytest.raises(SalesforceError) as exc:
        small.get_updated("AccountHistory", T0 - timedelta(days=1), T0)
    assert exc.value.error_code == "CANNOT_REPLICATE"


def test_archived_tasks_are_for_query_all_only(small):
    archived = {r["Id"] for r in small.true_records("Task") if r["IsArchived"]}
    assert archived
    q = small.compile("SELECT Id FROM Task")
    qa = small.compile("SELECT Id FROM Task", include_deleted=True)
    seen = {r[0] for r in small.fetch(q, None, 2000).rows}
    seen_all = {r[0] for r in small.fetch(qa, None, 2000).rows}
    assert not archived & seen and archived <= seen_all


@pytest.fixture(scope="module")
def validated_org():
    org = Org.generate(scale=2000, seed=11, clock=Clock(T0, frozen=True))
    yield org
    org.close()


def test_generated_values_fit_the_orgs_own_describe(validated_org):
    """Lengths, picklist values and number precision/scale, as describe reports them (a restore of
    generated data into a real org is refused otherwise: STRING_TOO_LONG, bad picklist values, ...)."""
    org = validated_org
    problems = []
    for name in org.object_names():
        obj = org.objects[name.lower()]
        if not obj.has_table:
            continue
        described = {f["name"]: f for f in org.describe(name)["fields"]}
        for rec in org.true_records(name, include_deleted=True, include_blobs=False):
            for field, value in rec.items():
                d = described[field]
                if value is None or isinstance(value, bool):
                    continue
                if isinstance(value, str) and d["length"] and len(value) > d["length"]:
                    problems.append((name, field, "length", len(value), d["length"]))
                allowed = {p["value"] for p in d["picklistValues"]}
                if d["type"] == "picklist" and allowed and value not in allowed:
                    problems.append((name, field, "picklist", value))
                if d["type"] == "multipicklist" and allowed and not set(value.split(";")) <= allowed:
                    problems.append((name, field, "multipicklist", value))
                if d["type"] in ("double", "currency", "percent") and d["precision"]:
                    whole = len(str(int(abs(value)))) if int(abs(value)) else 0
                    if whole > d["precision"] - d["scale"] or round(value, d["scale"]) != value:
                        problems.append((name, field, "precision/scale", value, d["precision"], d["scale"]))
                if d["type"] == "int" and d["digits"] and len(str(abs(value))) > d["digits"]:
                    problems.append((name, field, "digits", value, d["digits"]))
    assert problems == [], problems[:10]


def test_every_generated_record_passes_the_orgs_own_create(validated_org):
    """Each generated record, re-created from its createable fields through ``create()``, is accepted:
    a backup of generated data can be restored into the same kind of org. Unique values get another
    first character (same length) so they don't collide with the record they were copied from."""
    org = validated_org
    records = {
        name: list(org.true_records(name))
        for name in org.object_names()
        if org.objects[name.lower()].has_table and org.objects[name.lower()].createable
    }
    assert len(records) > 15 and sum(map(len, records.values())) > 1500
    refused = []
    for name, recs in records.items():
        fields = [f for f in org.objects[name.lower()].stored_fields() if f.createable and f.name != "Id"]
        for rec in recs:
            values = {}
            for f in fields:
                value = rec[f.name]
                if value is not None:
                    values[f.name] = "Z" + value[1:] if f.unique and isinstance(value, str) else value
            try:
                org.create(name, values)
            except SalesforceError as exc:
                refused.append((name, rec["Id"], exc.error_code, str(exc)[:120]))
    assert refused == [], refused[:10]
    titles = [r["Title"] for r in records["Contact"] if r["Title"]]
    assert any("\n" in t or '"' in t or "," in t for t in titles)  # hostile text stays, within limits
    assert max(map(len, titles)) <= 128


def test_reopen_generated_org(tmp_path):
    org = Org.generate(tmp_path, scale=200, seed=5, clock=Clock(T0, frozen=True))
    before = dump(org)
    org.close()
    again = Org.generate(
        tmp_path, scale=200, seed=5, clock=Clock(T0, frozen=True)
    )  # reopened, not regenerated
    assert dump(again) == before
    again.close()


# The generator's output for a seed is a contract (benchmarks and demos compare runs): speed-ups must
# keep every draw in order. Change this hash only for a deliberate change of the generated data.
# (Changed deliberately: text values are now cut to their field's describe length, e.g. Contact.Title.)
GOLDEN_SCALE_500_SEED_11 = "4a532f4017dd3b21da7badce3a62fa9d9a686946dacccd144157ccc854c7add8"


def test_generated_data_is_pinned_for_a_seed(small):
    digest = hashlib.sha256()
    for records in dump(small).values():
        for r in records:
            digest.update(repr(sorted(r.items())).encode())
    assert digest.hexdigest() == GOLDEN_SCALE_500_SEED_11
