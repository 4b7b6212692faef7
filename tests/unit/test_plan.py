"""The backup plan: skip rules with reasons, field selection, strategy, schema hash."""

from __future__ import annotations

import pytest

from orgvault.domain.plan import (
    BackupPlan,
    ObjectPlan,
    PlanSettings,
    SkippedObject,
    SkipReason,
    Strategy,
    build_plan,
    fields_hash,
    plan_object,
    skip_reason,
    soql,
)
from orgvault.ports import FieldInfo, ObjectSchema


def entry(name: str, **flags: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": name,
        "queryable": True,
        "retrieveable": True,
        "replicateable": True,
        "deprecatedAndHidden": False,
        "keyPrefix": None,
    }
    base.update(flags)
    return base


def schema(name: str, *fields: FieldInfo) -> ObjectSchema:
    return ObjectSchema(name=name, fields=fields or (FieldInfo("Id", "id"), FieldInfo("Name", "string")))


CONTENT_VERSION = schema(
    "ContentVersion",
    FieldInfo("Title", "string"),
    FieldInfo("Id", "id"),
    FieldInfo("VersionData", "base64"),
    FieldInfo("ContentSize", "int"),
    FieldInfo("SystemModstamp", "datetime"),
    FieldInfo("IsDeleted", "boolean"),
)
ACCOUNT = schema(
    "Account",
    FieldInfo("Id", "id"),
    FieldInfo("BillingAddress", "address"),
    FieldInfo("BillingCity", "string", compound_field_name="BillingAddress"),
    FieldInfo("Geo__c", "location"),
    FieldInfo("Geo__Latitude__s", "double", compound_field_name="Geo__c"),
    FieldInfo("Score__c", "double", calculated=True),
    FieldInfo("LastModifiedDate", "datetime"),
)


@pytest.mark.parametrize(
    ("name", "flags", "reason"),
    [
        ("AccountChangeEvent", {}, SkipReason.NAME_RULE),
        ("AccountFeed", {}, SkipReason.NAME_RULE),
        ("AccountHistory", {}, SkipReason.NAME_RULE),
        ("Invoice__History", {}, SkipReason.NAME_RULE),
        ("AccountShare", {}, SkipReason.NAME_RULE),
        ("Invoice__Tag", {}, SkipReason.NAME_RULE),
        ("Order_Placed__e", {}, SkipReason.NAME_RULE),
        ("Legacy__x", {}, SkipReason.NAME_RULE),
        ("Setting__mdt", {}, SkipReason.NAME_RULE),
        ("RecentlyViewed", {}, SkipReason.NAME_RULE),
        ("Account", {"queryable": False}, SkipReason.NOT_QUERYABLE),
        ("Account", {"retrieveable": False}, SkipReason.NOT_RETRIEVEABLE),
        ("OldThing", {"deprecatedAndHidden": True}, SkipReason.DEPRECATED),
        ("AccountFeed", {"queryable": False}, SkipReason.NOT_QUERYABLE),  # flags are reported first
    ],
)
def test_skip_rules_report_their_reason(name: str, flags: dict[str, object], reason: SkipReason) -> None:
    skipped = skip_reason(entry(name, **flags))
    assert skipped is not None
    assert skipped.name == name and skipped.reason is reason and skipped.detail


@pytest.mark.parametrize(
    "name", ["Account", "Contact", "ContentVersion", "Share", "Market_Share__c", "Feedback__c"]
)
def test_data_objects_are_kept(name: str) -> None:
    assert skip_reason(entry(name)) is None


def test_settings_override_name_rules_but_not_describe_flags() -> None:
    s = PlanSettings(include=("AccountHistory", "*__Tag"), exclude=("Secret__*",))
    assert skip_reason(entry("AccountHistory"), s) is None
    assert skip_reason(entry("Invoice__Tag"), s) is None
    assert skip_reason(entry("AccountFeed"), s).reason is SkipReason.NAME_RULE  # type: ignore[union-attr]
    assert skip_reason(entry("Secret__c"), s).reason is SkipReason.EXCLUDED  # type: ignore[union-attr]
    assert skip_reason(entry("AccountHistory", queryable=False), s).reason is SkipReason.NOT_QUERYABLE  # type: ignore[union-attr]
    only = PlanSettings(only=("Account", "contact"), exclude=("Contact",))
    assert skip_reason(entry("Account"), only) is None
    assert skip_reason(entry("Contact"), only).reason is SkipReason.EXCLUDED  # type: ignore[union-attr]
    assert skip_reason(entry("Lead"), only).reason is SkipReason.NOT_SELECTED  # type: ignore[union-attr]


def test_settings_from_mapping_accepts_lists_and_comma_strings() -> None:
    s = PlanSettings.from_mapping({"only": "Account, Contact", "exclude": ["Lead"]})
    assert s == PlanSettings(only=("Account", "Contact"), exclude=("Lead",))
    assert PlanSettings.from_mapping(None) == PlanSettings()


def test_files_go_to_the_file_path_and_id_comes_first() -> None:
    plan = plan_object(entry("ContentVersion"), CONTENT_VERSION)
    assert isinstance(plan, ObjectPlan)
    assert plan.fields == ("Id", "Title", "ContentSize", "SystemModstamp", "IsDeleted")
    assert plan.field_types == ("id", "string", "int", "datetime", "boolean")
    assert plan.file_fields == ("VersionData",)
    assert plan.strategy is Strategy.BULK
    assert plan.watermark_field == "SystemModstamp" and plan.has_is_deleted
    assert plan.specs[0] == ("Id", "id")


def test_compound_fields_are_replaced_by_components_and_calculated_fields_are_read() -> None:
    plan = plan_object(entry("Account"), ACCOUNT)
    assert isinstance(plan, ObjectPlan)
    assert "BillingAddress" not in plan.fields and "Geo__c" not in plan.fields
    assert {"BillingCity", "Geo__Latitude__s", "Score__c"} <= set(plan.fields)
    assert plan.calculated_fields == ("Score__c",)
    assert plan.watermark_field == "LastModifiedDate" and not plan.has_is_deleted


def test_bulk_unsupported_objects_are_read_through_rest() -> None:
    attachment = schema(
        "Attachment", FieldInfo("Id", "id"), FieldInfo("Body", "base64"), FieldInfo("Name", "string")
    )
    plan = plan_object(entry("Attachment"), attachment)
    assert isinstance(plan, ObjectPlan)
    assert plan.strategy is Strategy.REST and plan.file_fields == ("Body",)


def test_object_without_id_is_skipped_with_reason() -> None:
    result = plan_object(entry("Weird"), schema("Weird", FieldInfo("Name", "string")))
    assert isinstance(result, SkippedObject) and result.reason is SkipReason.NO_FIELDS


def test_fields_hash_detects_schema_changes_not_order() -> None:
    base = [("Id", "id"), ("Name", "string")]
    assert fields_hash(base) == fields_hash(list(reversed(base)))
    assert fields_hash(base) != fields_hash([*base, ("New__c", "string")])
    assert fields_hash(base) != fields_hash([("Id", "id"), ("Name", "textarea")])
    a = plan_object(entry("Account"), ACCOUNT)
    b = plan_object(
        entry("Account"), ObjectSchema("Account", (*ACCOUNT.fields, FieldInfo("New__c", "string")))
    )
    assert isinstance(a, ObjectPlan) and isinstance(b, ObjectPlan) and a.fields_hash != b.fields_hash


def test_build_plan_accounts_for_every_object_and_describes_only_kept_ones() -> None:
    sobjects = [
        entry("Contact"),
        entry("AccountFeed"),
        entry("Account"),
        entry("Broken__c"),
        entry("Hidden", queryable=False),
        entry("ContentVersion"),
    ]
    schemas = {"Account": ACCOUNT, "ContentVersion": CONTENT_VERSION, "Contact": schema("Contact")}
    described: list[str] = []

    def describe(name: str) -> ObjectSchema:
        described.append(name)
        if name not in schemas:
            raise LookupError(f"describe of {name} failed")
        return schemas[name]

    plan = build_plan(sobjects, describe, on_describe_error=LookupError)
    assert isinstance(plan, BackupPlan)
    assert [o.name for o in plan.objects] == ["Account", "Contact", "ContentVersion"]
    assert {s.name: s.reason for s in plan.skipped} == {
        "AccountFeed": SkipReason.NAME_RULE,
        "Broken__c": SkipReason.DESCRIBE_FAILED,
        "Hidden": SkipReason.NOT_QUERYABLE,
    }
    assert sorted(described) == ["Account", "Broken__c", "Contact", "ContentVersion"]
    assert plan.get("account") is plan.objects[0]
    with pytest.raises(LookupError):
        build_plan(sobjects, describe)  # not declared as skippable: it propagates


def test_soql_has_no_order_by_or_limit() -> None:
    assert soql("Account", ["Id", "Name"]) == "SELECT Id, Name FROM Account"
    assert soql("Account", ["Id"], "SystemModstamp >= 2024-01-01T00:00:00Z") == (
        "SELECT Id FROM Account WHERE SystemModstamp >= 2024-01-01T00:00:00Z"
    )


def test_objects_needing_a_parent_filter_are_planned_for_rest() -> None:
    from orgvault.domain.plan import FILTER_REQUIRED

    links = schema(
        "ContentDocumentLink",
        FieldInfo("Id", "id"),
        FieldInfo("ContentDocumentId", "reference"),
        FieldInfo("LinkedEntityId", "reference"),
    )
    plan = plan_object(entry("ContentDocumentLink"), links)
    assert isinstance(plan, ObjectPlan) and plan.strategy is Strategy.REST
    parent, key = FILTER_REQUIRED["contentdocumentlink"]
    assert links.field(key) is not None and parent == "ContentDocument"
