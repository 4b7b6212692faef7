"""SOQL subset: parsing (valid and invalid) and query semantics against a small hand-made org."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from salesforce_emulator import Clock, Org, SalesforceError
from salesforce_emulator.ids import to_18
from salesforce_emulator.soql import parse


@pytest.fixture(scope="module")
def org():
    o = Org(clock=Clock(datetime(2024, 3, 1, 12, 0, tzinfo=UTC), frozen=True))
    a1 = o.create(
        "Account",
        {
            "Name": "Acme",
            "Industry": "Banking",
            "AnnualRevenue": 100.5,
            "NumberOfEmployees": 10,
            "Active__c": True,
            "Customer_Since__c": "2020-01-15",
            "External_Id__c": "A1",
        },
    )
    o.clock.advance(60)
    a2 = o.create(
        "Account",
        {
            "Name": "globex",
            "Industry": None,
            "AnnualRevenue": 5000,
            "Active__c": False,
            "External_Id__c": "A2",
        },
    )
    o.clock.advance(60)
    a3 = o.create("Account", {"Name": "Init'ech 100%", "Industry": "Energy", "ParentId": a1})
    o.create("Contact", {"LastName": "Smith", "FirstName": "Ann", "AccountId": a1})
    o.create("Contact", {"LastName": "Jones", "AccountId": a2})
    o.create("Contact", {"LastName": "Orphan"})
    o.ids_ = {"a1": a1, "a2": a2, "a3": a3}
    yield o
    o.close()


def names(org, soql, **kw):
    q = org.compile(soql, **kw)
    return [r[0] for r in org.fetch(q, None, 2000).rows]


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Account",
        "select id, name from account",
        "SELECT  Id ,Name   FROM   Account   WHERE  Name = 'x'  ",
        "SELECT COUNT() FROM Contact",
        "SELECT Id FROM Account WHERE (Name = 'a' OR Name = 'b') AND NOT Industry = null",
        "SELECT Id FROM Account WHERE Name IN ('a', 'b') AND Industry NOT IN ('c')",
        "SELECT Id FROM Account WHERE CreatedDate > 2020-01-01T00:00:00Z AND CreatedDate < 2030-01-01T00:00:00+00:00",
        "SELECT Id FROM Account WHERE SystemModstamp >= 2020-01-01T00:00:00.000+0000",
        "SELECT Id FROM Account WHERE Customer_Since__c = 2020-01-15",
        "SELECT Id FROM Account ORDER BY Name DESC NULLS LAST, CreatedDate ASC NULLS FIRST LIMIT 5",
        "SELECT Id, Account.Name, Account.Owner.Name FROM Contact WHERE Account.Name LIKE 'Ac%'",
        "SELECT Id, What.Name, Who.Name, Owner.Name FROM Task",
        "SELECT Id FROM Account WHERE Active__c = true AND AnnualRevenue >= 10.5 AND NumberOfEmployees != 3",
        "SELECT Id FROM Account WHERE Name = 'It\\'s'",
        "SELECT\n\tId\n  FROM\tAccount\r\n WHERE\n Name\t=\t'x'",
    ],
)
def test_valid_queries_compile(org, soql):
    q = org.compile(soql)
    org.fetch(q, None, 10)


@pytest.mark.parametrize(
    "soql, code",
    [
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = ", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name 'x'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT x", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account GROUP BY Name", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account OFFSET 5", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT 5 OFFSET 5", "MALFORMED_QUERY"),
        ("SELECT COUNT(Id) FROM Account", "MALFORMED_QUERY"),
        ("SELECT FIELDS(ALL) FROM Account LIMIT 200", "MALFORMED_QUERY"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "MALFORMED_QUERY"),
        ("SELECT TYPEOF What WHEN Account THEN Name END FROM Task", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate = THIS_WEEK", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate = LAST_N_WEEKS:5", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate IN (TODAY)", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = :name", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = TODAY", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account a", "MALFORMED_QUERY"),
        ("SELECT Id, Id FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE AnnualRevenue > null", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account FOR UPDATE", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'x' garbage", "MALFORMED_QUERY"),
        ("SELECT Nope FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Nope = 1", "INVALID_FIELD"),
        ("SELECT Bogus.Name FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE AnnualRevenue = '5'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2020-01-01", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE CreatedDate > '2020-01-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Active__c = 'true'", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD"),  # long text area: not filterable
        ("SELECT Id FROM Account ORDER BY BillingAddress", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
        ("SELECT Id FROM AccountChangeEvent", "INVALID_TYPE"),
        ("SELECT Id FROM ContentDocumentLink", "MALFORMED_QUERY"),  # Salesforce's implementation restriction
        ("SELECT Id FROM ContentDocumentLink WHERE ShareType = 'V'", "MALFORMED_QUERY"),
        ("SELECT Id FROM ContentDocumentLink WHERE ContentDocumentId != null", "MALFORMED_QUERY"),
    ],
)
def test_invalid_queries(org, soql, code):
    with pytest.raises(SalesforceError) as exc:
        org.compile(soql)
    assert exc.value.status == 400 and exc.value.error_code == code
    assert exc.value.message


def test_long_in_lists_and_the_length_limit(org):
    ids = [org.ids_["a1"]] + [f"'{to_18(f'001{i:012d}')}'" for i in range(4000)]
    ids[0] = f"'{ids[0]}'"
    q = org.compile(f"SELECT Name FROM Account WHERE Id IN ({', '.join(ids)})")
    assert [r[0] for r in org.fetch(q, None, 10).rows] == ["Acme"]
    too_long = "SELECT Id FROM Account WHERE Name IN (" + ", ".join(["'xxxxxxxx'"] * 9000) + ")"
    assert len(too_long) > 100_000
    with pytest.raises(SalesforceError) as exc:
        org.compile(too_long)
    assert exc.value.error_code == "MALFORMED_QUERY"


def test_malformed_message_points_at_the_problem(org):
    with pytest.raises(SalesforceError) as exc:
        org.compile("SELECT Id FROM Account WHERE Name = 'x' garbage")
    assert "Row:1:Column:41" in exc.value.message and "garbage" in exc.value.message


@pytest.mark.parametrize(
    "soql, code",
    [
        ("SELECT Id, BillingAddress FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT Id, Headquarters__c FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT Id, VersionData FROM ContentVersion", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT Id FROM Attachment", "INVALIDENTITY"),
        ("SELECT Id FROM RecentlyViewed", "INVALIDENTITY"),
        ("SELECT Id FROM Account LIMIT 5 OFFSET 5", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT FIELDS(ALL) FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT COUNT(Id) FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        ("SELECT TYPEOF What WHEN Account THEN Name END FROM Task", "FUNCTIONALITY_NOT_ENABLED"),
    ],
)
def test_bulk_refusals(org, soql, code):
    with pytest.raises(SalesforceError) as exc:
        org.compile(soql, for_bulk=True)
    assert exc.value.error_code == code
    if "BillingAddress" in soql:  # clients match this exact message
        assert exc.value.message == "Selecting compound data not supported in Bulk Query"


def test_bulk_accepts_components_and_relationships(org):
    q = org.compile("SELECT Id, BillingCity, Parent.Name FROM Account", for_bulk=True)
    assert [c.name for c in q.columns] == ["Id", "BillingCity", "Parent.Name"]


def test_parse_tree():
    sel = parse(
        "select Id, account.name from CONTACT where (a = 1 or b = 'x') and not c = null order by d desc "
        "nulls last limit 7"
    )
    assert sel.sobject == "CONTACT" and sel.limit == 7
    assert [p for p, _ in sel.fields] == [("Id",), ("account", "name")]
    assert sel.where.op == "AND" and sel.order[0].desc and sel.order[0].nulls_last


def test_case_insensitive_names_come_back_canonical(org):
    q = org.compile("select ID, account.NAME, account.owner.name from contact")
    assert [c.name for c in q.columns] == ["Id", "Account.Name", "Account.Owner.Name"]
    assert q.object_name == "Contact"


def test_equality_is_case_insensitive(org):
    assert names(org, "SELECT Name FROM Account WHERE Name = 'ACME'") == ["Acme"]
    assert names(org, "SELECT Name FROM Account WHERE Name LIKE 'glo%'") == ["globex"]
    assert names(org, "SELECT Name FROM Account WHERE Name LIKE '%100\\%'") == ["Init'ech 100%"]


def test_not_equal_includes_nulls_like_salesforce(org):
    assert sorted(names(org, "SELECT Name FROM Account WHERE Industry != 'Banking'")) == [
        "Init'ech 100%",
        "globex",
    ]
    assert sorted(names(org, "SELECT Name FROM Account WHERE Industry NOT IN ('Banking')")) == [
        "Init'ech 100%",
        "globex",
    ]
    assert names(org, "SELECT Name FROM Account WHERE NOT Industry = 'Banking' AND Industry = null") == [
        "globex"
    ]


def test_null_comparisons_and_in(org):
    assert names(org, "SELECT Name FROM Account WHERE Industry = null") == ["globex"]
    assert sorted(names(org, "SELECT Name FROM Account WHERE Industry != null")) == ["Acme", "Init'ech 100%"]
    assert sorted(names(org, "SELECT Name FROM Account WHERE Industry IN ('Energy', null)")) == [
        "Init'ech 100%",
        "globex",
    ]


def test_boolean_number_date_datetime_filters(org):
    assert names(org, "SELECT Name FROM Account WHERE Active__c = true") == ["Acme"]
    assert names(org, "SELECT Name FROM Account WHERE Active__c = false ORDER BY Name") == [
        "globex",
        "Init'ech 100%",
    ]
    assert names(org, "SELECT Name FROM Account WHERE AnnualRevenue > 100 AND AnnualRevenue < 101") == [
        "Acme"
    ]
    assert names(org, "SELECT Name FROM Account WHERE Customer_Since__c >= 2020-01-15") == ["Acme"]
    # 12:01 UTC == 14:01+02:00 ; the second account was created at 12:01:00
    assert names(org, "SELECT Name FROM Account WHERE CreatedDate = 2024-03-01T14:01:00+02:00") == ["globex"]
    assert names(org, "SELECT Name FROM Account WHERE CreatedDate > 2024-03-01T12:01:00.000+0000") == [
        "Init'ech 100%"
    ]


def test_id_filters_accept_15_and_18_chars(org):
    a1 = org.ids_["a1"]
    assert names(org, f"SELECT Name FROM Account WHERE Id = '{a1[:15]}'") == ["Acme"]
    assert names(org, f"SELECT Name FROM Account WHERE Id = '{a1.lower()}'") == ["Acme"]
    assert names(org, f"SELECT Name FROM Account WHERE ParentId = '{a1}'") == ["Init'ech 100%"]


def test_relationship_filter_and_order(org):
    assert names(org, "SELECT LastName FROM Contact WHERE Account.Name = 'acme'") == ["Smith"]
    assert names(org, "SELECT LastName FROM Contact ORDER BY Account.Name DESC NULLS LAST") == [
        "Jones",
        "Smith",
        "Orphan",
    ]
    assert names(org, "SELECT LastName FROM Contact ORDER BY Account.Name ASC") == [
        "Orphan",
        "Smith",
        "Jones",
    ]


def test_count_and_limit(org):
    q = org.compile("SELECT COUNT() FROM Contact")
    assert q.is_count and q.columns == [] and org.count(q) == 3
    q = org.compile("SELECT COUNT() FROM Contact WHERE AccountId != null")
    assert org.count(q) == 2
    q = org.compile("SELECT Id FROM Contact LIMIT 2")
    assert q.limit == 2 and org.count(q) == 2 and len(org.fetch(q, None, 2000).rows) == 2


def test_content_document_link_needs_an_id_filter(org):
    org.compile("SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId = '001000000000001AAA'")
    org.compile(
        "SELECT Id FROM ContentDocumentLink WHERE ContentDocumentId IN ('069000000000001AAA') AND "
        "ShareType = 'V'"
    )


def test_awkward_objects_query_empty_or_refuse(org):
    for name in ("AccountFeed", "AccountHistory", "AccountShare", "RecentlyViewed"):
        q = org.compile(f"SELECT Id FROM {name}")
        assert org.count(q) == 0 and org.fetch(q, None, 10).rows == []


_TOKENS = [
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "DESC",
    "ASC",
    "NULLS",
    "LAST",
    "LIMIT",
    "COUNT()",
    "Id",
    "Name",
    "Account.Name",
    "Owner.Name",
    "What.Name",
    "What.Type",
    "Account",
    "Contact",
    "Task",
    "=",
    "!=",
    "<",
    ">=",
    "(",
    ")",
    ",",
    "'x'",
    "'it\\'s'",
    "5",
    "-1.5",
    "null",
    "true",
    "2020-01-01",
    "2020-01-01T00:00:00Z",
    "BillingAddress",
    "Description",
    "CreatedDate",
    "IsDeleted",
    "OFFSET",
    "GROUP",
    "'",
    "\\",
    ":",
    "FIELDS(ALL)",
    "TYPEOF",
    "%",
    "Industry",
    "AnnualRevenue",
]


def test_any_token_soup_compiles_or_fails_cleanly(org):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(_TOKENS), max_size=14), st.booleans())
    def check(tokens, bulk):
        text = " ".join(["SELECT", *tokens]) if tokens[:1] != ["SELECT"] else " ".join(tokens)
        try:
            q = org.compile(text, for_bulk=bulk)
        except SalesforceError as exc:
            assert exc.status == 400 and exc.error_code and exc.message
            return
        page = org.fetch(q, None, 5)  # whatever compiles must also run
        org.render_json(q, page.rows)

    check()


def test_relative_date_literals_follow_the_org_clock(org):
    # the org clock is frozen at 2024-03-01 12:00 UTC; accounts were created at 12:00, 12:01, 12:02
    everyone = sorted(names(org, "SELECT Name FROM Account"))
    assert sorted(names(org, "SELECT Name FROM Account WHERE CreatedDate = TODAY")) == everyone
    assert names(org, "SELECT Name FROM Account WHERE CreatedDate = YESTERDAY") == []
    assert sorted(names(org, "SELECT Name FROM Account WHERE CreatedDate = LAST_N_DAYS:3")) == everyone
    assert names(org, "SELECT Name FROM Account WHERE CreatedDate > TODAY") == []
    assert sorted(names(org, "SELECT Name FROM Account WHERE CreatedDate <= today")) == everyone
    assert sorted(names(org, "SELECT Name FROM Account WHERE CreatedDate = THIS_MONTH")) == everyone
    assert names(org, "SELECT Name FROM Account WHERE CreatedDate = LAST_MONTH") == []
    assert names(org, "SELECT Name FROM Account WHERE Customer_Since__c < LAST_YEAR") == ["Acme"]
    assert sorted(names(org, "SELECT Name FROM Account WHERE Customer_Since__c != THIS_YEAR")) == everyone
    org.clock.advance(86400)
    try:
        assert sorted(names(org, "SELECT Name FROM Account WHERE CreatedDate = YESTERDAY")) == everyone
        assert sorted(names(org, "SELECT Name FROM Account WHERE CreatedDate = N_DAYS_AGO:1")) == everyone
        assert names(org, "SELECT Name FROM Account WHERE CreatedDate = NEXT_N_DAYS:5") == []
    finally:
        org.clock.advance(-86400)


def test_date_literal_ranges():
    from datetime import date

    from salesforce_emulator.soql import date_literal_range

    d = date(2024, 12, 31)
    assert date_literal_range("next_month", 0, d) == (date(2025, 1, 1), date(2025, 2, 1))
    assert date_literal_range("last_month", 0, date(2024, 1, 15)) == (date(2023, 12, 1), date(2024, 1, 1))
    assert date_literal_range("this_month", 0, d) == (date(2024, 12, 1), date(2025, 1, 1))
    assert date_literal_range("last_n_days", 7, d) == (date(2024, 12, 24), date(2025, 1, 1))
    assert date_literal_range("next_n_days", 1, d) == (date(2025, 1, 1), date(2025, 1, 2))
    assert date_literal_range("n_days_ago", 2, d) == (date(2024, 12, 29), date(2024, 12, 30))
    assert date_literal_range("last_year", 0, d) == (date(2023, 1, 1), date(2024, 1, 1))
