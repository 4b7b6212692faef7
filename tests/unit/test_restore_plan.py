"""Pure restore planning: order, field filtering, id remapping, revert, fingerprints, id indexes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgvault.domain import record_index as ri
from orgvault.domain.restore_plan import (
    IdMap,
    Operation,
    fingerprint,
    missing_fields,
    plan_order,
    prepare_record,
    prepare_relink,
    revert_changes,
    values_equal,
)
from orgvault.ports import FieldInfo, ObjectSchema


def ref(name: str, *to: str, nillable: bool = True, createable: bool = True) -> FieldInfo:
    return FieldInfo(
        name,
        "reference",
        createable=createable,
        updateable=createable,
        nillable=nillable,
        reference_to=tuple(to),
    )


def text(name: str, createable: bool = True, updateable: bool = True, **kw) -> FieldInfo:
    return FieldInfo(name, "string", createable=createable, updateable=updateable, **kw)


SYSTEM = (
    FieldInfo("Id", "id"),
    FieldInfo("CreatedDate", "datetime"),
    FieldInfo("SystemModstamp", "datetime"),
    FieldInfo("LastModifiedDate", "datetime"),
)

SCHEMAS = {
    "Account": ObjectSchema(
        "Account",
        (
            *SYSTEM,
            text("Name"),
            ref("ParentId", "Account"),
            ref("OwnerId", "User", "Group"),
            FieldInfo("Score__c", "double", calculated=True),
            text("AccountNumber", createable=True, updateable=False),
        ),
        key_prefix="001",
    ),
    "Contact": ObjectSchema(
        "Contact",
        (*SYSTEM, text("LastName"), ref("AccountId", "Account"), ref("ReportsToId", "Contact")),
        key_prefix="003",
    ),
    "Opportunity": ObjectSchema(
        "Opportunity", (*SYSTEM, text("Name"), ref("AccountId", "Account")), key_prefix="006"
    ),
    "OpportunityLineItem": ObjectSchema(
        "OpportunityLineItem",
        (*SYSTEM, ref("OpportunityId", "Opportunity", nillable=False)),
        key_prefix="00k",
    ),
    "Task": ObjectSchema(
        "Task",
        (*SYSTEM, text("Subject"), ref("WhoId", "Contact", "Lead"), ref("WhatId", "Account", "Opportunity")),
        key_prefix="00T",
    ),
    "A__c": ObjectSchema("A__c", (*SYSTEM, ref("B__c", "B__c", nillable=False)), key_prefix="a00"),
    "B__c": ObjectSchema("B__c", (*SYSTEM, ref("A__c", "A__c")), key_prefix="a01"),
}
PREFIXES = {s.key_prefix: n for n, s in SCHEMAS.items() if s.key_prefix}


def test_parents_before_children_and_self_reference_deferred():
    plan = plan_order(SCHEMAS, ["OpportunityLineItem", "Task", "Contact", "Opportunity", "Account"])
    order = list(plan.order)
    assert order.index("Account") < order.index("Contact") < order.index("Task")
    assert order.index("Account") < order.index("Opportunity") < order.index("OpportunityLineItem")
    assert order.index("Opportunity") < order.index("Task")
    assert plan.deferred_fields("Account") == ("ParentId",)
    assert plan.deferred_fields("Contact") == ("ReportsToId",)
    assert plan.deferred_fields("Opportunity") == ()


def test_cycle_is_broken_on_the_nillable_side():
    plan = plan_order(SCHEMAS, ["A__c", "B__c"])
    # A__c.B__c is required, B__c.A__c is nillable: B__c goes first with A__c deferred.
    assert plan.order == ("B__c", "A__c")
    assert plan.deferred == {"B__c": ("A__c",)}


def test_insert_sends_only_createable_fields_and_remaps_lookups():
    ids = IdMap({"001000000000001AAA": "001000000000099AAA"})
    rec = {
        "Id": "003000000000001AAA",
        "LastName": "Lovelace",
        "AccountId": "001000000000001AAA",
        "ReportsToId": "003000000000002AAA",
        "CreatedDate": "2020-01-01T00:00:00.000+0000",
        "SystemModstamp": "2020-01-01T00:00:00.000+0000",
        "Unknown__c": 1,
    }
    w = prepare_record(
        rec,
        object_name="Contact",
        target=SCHEMAS["Contact"],
        operation=Operation.INSERT,
        id_map=ids,
        key_prefixes=PREFIXES,
        deferred_fields=("ReportsToId",),
    )
    assert dict(w.values) == {"LastName": "Lovelace", "AccountId": "001000000000099AAA"}
    assert dict(w.deferred) == {"ReportsToId": "003000000000002AAA"}
    assert "Unknown__c" in w.dropped
    assert not w.unresolved


def test_not_createable_and_calculated_fields_are_never_sent():
    rec = {"Id": "001000000000001AAA", "Name": "Acme", "Score__c": 3.0, "AccountNumber": "A-1"}
    ins = prepare_record(
        rec,
        object_name="Account",
        target=SCHEMAS["Account"],
        operation=Operation.INSERT,
        id_map=IdMap(),
        key_prefixes=PREFIXES,
    )
    assert dict(ins.values) == {"Name": "Acme", "AccountNumber": "A-1"}
    upd = prepare_record(
        rec,
        object_name="Account",
        target=SCHEMAS["Account"],
        operation=Operation.UPDATE,
        id_map=IdMap(),
        key_prefixes=PREFIXES,
    )
    assert dict(upd.values) == {"Name": "Acme"}  # AccountNumber is createable but not updateable


def test_polymorphic_lookup_resolved_by_key_prefix():
    ids = IdMap({"006000000000001AAA": "006000000000777AAA"})
    existing = {("Contact", "003000000000005AAA")}
    rec = {
        "Id": "00T000000000001AAA",
        "Subject": "Call",
        "WhatId": "006000000000001AAA",
        "WhoId": "003000000000005AAA",
    }
    w = prepare_record(
        rec,
        object_name="Task",
        target=SCHEMAS["Task"],
        operation=Operation.INSERT,
        id_map=ids,
        key_prefixes=PREFIXES,
        exists_in_target=lambda o, i: (o, i) in existing,
    )
    assert w.values["WhatId"] == "006000000000777AAA"
    assert w.values["WhoId"] == "003000000000005AAA"  # not restored, still exists: kept


def test_unresolvable_lookup_is_nulled_and_reported():
    rec = {"Id": "00T000000000001AAA", "Subject": "Call", "WhatId": "001000000000404AAA"}
    w = prepare_record(
        rec,
        object_name="Task",
        target=SCHEMAS["Task"],
        operation=Operation.INSERT,
        id_map=IdMap(),
        key_prefixes=PREFIXES,
    )
    assert "WhatId" not in w.values
    assert dict(w.unresolved) == {"WhatId": "001000000000404AAA"}


def test_relink_sets_self_reference_after_pass_one():
    ids = IdMap()
    parent = {"Id": "001000000000001AAA", "Name": "Parent"}
    child = {"Id": "001000000000002AAA", "Name": "Child", "ParentId": "001000000000001AAA"}
    writes = [
        prepare_record(
            r,
            object_name="Account",
            target=SCHEMAS["Account"],
            operation=Operation.INSERT,
            id_map=ids,
            key_prefixes=PREFIXES,
            deferred_fields=("ParentId",),
        )
        for r in (child, parent)
    ]
    assert all("ParentId" not in w.values for w in writes)
    ids.add("001000000000001AAA", "001000000000101AAA")
    ids.add("001000000000002AAA", "001000000000102AAA")
    relinks = [
        prepare_relink(
            w, new_id=ids.get(w.source_id), id_map=ids, key_prefixes=PREFIXES, target=SCHEMAS["Account"]
        )
        for w in writes
    ]
    assert relinks[1] is None  # the parent has no parent
    assert dict(relinks[0].values) == {"Id": "001000000000102AAA", "ParentId": "001000000000101AAA"}


def test_revert_patches_only_changed_updateable_fields():
    backup = {
        "Id": "001000000000001AAA",
        "Name": "Acme",
        "AccountNumber": "A-1",
        "Score__c": 1.0,
        "SystemModstamp": "2020-01-01T00:00:00.000+0000",
        "OwnerId": "005000000000001AAA",
    }
    current = {
        "Id": "001000000000001AAA",
        "Name": "CORRUPTED",
        "AccountNumber": "A-2",
        "Score__c": 9.0,
        "SystemModstamp": "2021-01-01T00:00:00.000+0000",
        "OwnerId": "005000000000001",
    }
    values, refused = revert_changes(backup, current, SCHEMAS["Account"])
    assert values == {"Name": "Acme"}
    assert refused == ["AccountNumber", "Score__c"]
    values, _ = revert_changes(backup, current, SCHEMAS["Account"], fields=["OwnerId"])
    assert values == {}


def test_missing_fields_listed_for_cross_org():
    assert missing_fields(["Id", "Name", "Region__c", "SystemModstamp"], SCHEMAS["Account"]) == ["Region__c"]
    assert missing_fields(["Id", "Name"], None) == ["Name"]


def test_values_equal_ids_and_numbers():
    assert values_equal("001000000000001", "001000000000001AAA")
    assert values_equal(1, 1.0)
    assert values_equal("", None)
    assert not values_equal("a", "b")
    assert not values_equal(True, 1.5)


def test_fingerprint_matches_values_read_back():
    sent = {"Name": "Acme", "AccountId": "001000000000001AAA", "Amount": 5.0, "Empty": None}
    read = {"name": "Acme", "AccountId": "001000000000001", "Amount": 5}
    assert fingerprint("Account", sent) == fingerprint("account", read)
    assert fingerprint("Account", sent) != fingerprint("Account", {**read, "Name": "Acme2"})


ids_st = st.lists(st.text(alphabet="0123456789abcdefABCDEF", min_size=18, max_size=18), max_size=200)


@given(ids_st, st.text(alphabet="0123456789abcdefABCDEF", min_size=18, max_size=18))
def test_index_membership_is_exact(ids, probe):
    idx = ri.parse_index(ri.index_payload("abc", ids))
    assert idx.chunk_sha256 == "abc"
    for i in ids:
        assert i in idx
    assert (probe in idx) == any(i[:15] == probe[:15] for i in ids)


def test_index_candidates_newest_seq_first_and_range_pruning_only_when_trusted():
    chunks = [
        {
            "key": "a",
            "seq": 0,
            "kind": "records",
            "first_id": "001000000000001",
            "last_id": "001000000000100",
        },
        {
            "key": "b",
            "seq": 1,
            "kind": "records",
            "first_id": "001000000000101",
            "last_id": "001000000000200",
        },
        {
            "key": "t",
            "seq": 2,
            "kind": "tombstones",
            "first_id": "001000000000050",
            "last_id": "001000000000150",
        },
        {"key": "u", "seq": 3, "kind": "records"},
    ]
    assert [c["key"] for c in ri.candidates(chunks, "001000000000120AAA")] == ["u", "t", "b", "a"]
    got = [c["key"] for c in ri.candidates(chunks, "001000000000120AAA", trust_ranges=True)]
    assert got == ["u", "t", "b"]
    assert ri.index_for_chunk("s", [{"Id": "x" * 18}, {"Name": "no id"}]) == ri.index_payload("s", ["x" * 18])


# --- the --where language ------------------------------------------------------------------------

from orgvault.errors import ConfigError  # noqa: E402
from orgvault.services.restore_filter import parse_where, predicate, project  # noqa: E402

REC = {
    "Id": "001000000000001AAA",
    "Name": "Acme, Inc.",
    "AnnualRevenue": 1500000.0,
    "Email": None,
    "CloseDate": "2026-01-31",
    "IsActive": True,
    "ParentId": "001000000000009",
}


def test_where_conditions():
    def ok(expr: str) -> bool:
        return predicate(parse_where(expr))(REC)

    assert ok("Name ~ acme")
    assert ok("name ^ 'Acme,'")
    assert ok('Name = "Acme, Inc."')
    assert ok("AnnualRevenue > 1000000 and CloseDate < 2026-02-01")
    assert ok("AnnualRevenue >= 1500000, Email is null")
    assert ok("Id = 001000000000001")  # 15- and 18-character ids compare equal
    assert ok("ParentId = 001000000000009AAA")
    assert ok("IsActive = true")
    assert ok("Email = null") and ok("Name is not null") and ok("Email != x")
    assert not ok("AnnualRevenue < 1000")
    assert not ok("Name ~ globex")
    assert not ok("Missing__c = 1")


@pytest.mark.parametrize(
    "bad", ["Name", "Name like x", "Name =", "= x", "Name = x or Id = y", "Name = x and"]
)
def test_where_errors_say_what_is_wrong(bad):
    with pytest.raises(ConfigError, match="--where"):
        parse_where(bad)


def test_project_keeps_id_and_requested_fields():
    assert project(REC, ["name", "Nope"]) == {"Id": REC["Id"], "Name": "Acme, Inc.", "Nope": None}


def test_find_in_payload_skips_rows_that_only_reference_the_id():
    from orgvault.domain.chunks import encode_records

    rows = [
        {"Id": "001000000000002AAA", "Name": "child", "ParentId": "001000000000001AAA"},
        {"Id": "001000000000001AAA", "Name": 'parent "quoted"\nnewline', "ParentId": None},
        {"Id": "001000000000003AAA", "Name": "001000000000001", "ParentId": None},
    ]
    payload = encode_records(rows).payload
    assert ri.find_in_payload(payload, "001000000000001") == rows[1]
    assert ri.find_in_payload(payload, "001000000000003AAA") == rows[2]
    assert ri.find_in_payload(payload, "001000000000004AAA") is None
    for piece in (1, 7, 64):  # rows and the header split across decompressed pieces
        assert ri.find_in_payload(payload, "001000000000001AAA", piece=piece) == rows[1]
        assert ri.find_in_payload(payload, "001000000000003", piece=piece) == rows[2]
    idx = ri.IdIndex.of("sha", [r["Id"] for r in rows])
    assert (idx.first(), idx.last(), len(idx)) == ("001000000000001", "001000000000003", 3)


def test_bloom_filter_has_no_false_negatives_and_few_false_positives():
    ids = [f"001{i:012d}AAA" for i in range(5000)]
    bloom = ri.bloom_of(ids)
    assert all(ri.bloom_may_contain(bloom, i) for i in ids)
    others = [f"003{i:012d}AAA" for i in range(5000)]
    assert sum(ri.bloom_may_contain(bloom, i) for i in others) < 150  # ~1% expected
    assert ri.bloom_may_contain(b"", "anything")  # no filter: maybe
    summary = ri.parse_summary(ri.summary_payload({"sha": ("a", "b", 2, bloom)}))
    assert summary == {"sha": ("a", "b", 2, bloom)}
