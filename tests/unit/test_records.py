"""Canonical records: the same record read through REST JSON and through Bulk CSV is the same dict."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgvault.domain.records import (
    CsvRowMapper,
    canonical_from_csv,
    canonical_from_rest,
    canonical_value,
    field_specs,
    format_datetime,
    parse_datetime,
    soql_datetime,
)
from orgvault.ports import FieldInfo, ObjectSchema

ACCOUNT = ObjectSchema(
    name="Account",
    fields=(
        FieldInfo("Id", "id"),
        FieldInfo("Name", "string"),
        FieldInfo("BillingStreet", "textarea", compound_field_name="BillingAddress"),
        FieldInfo("BillingCity", "string", compound_field_name="BillingAddress"),
        FieldInfo("BillingAddress", "address"),
        FieldInfo("AnnualRevenue", "currency"),
        FieldInfo("NumberOfEmployees", "int"),
        FieldInfo("IsDeleted", "boolean"),
        FieldInfo("ParentId", "reference", reference_to=("Account",), relationship_name="Parent"),
        FieldInfo("SystemModstamp", "datetime"),
        FieldInfo("LastActivityDate", "date"),
    ),
)


def test_rest_and_csv_forms_of_one_record_are_identical() -> None:
    specs = field_specs(ACCOUNT, [f.name for f in ACCOUNT.fields])
    rest = {
        "attributes": {"type": "Account", "url": "/services/data/v59.0/sobjects/Account/001000000000001AAA"},
        "Id": "001000000000001AAA",
        "Name": 'Acme, "the" company\nLine 2',
        "BillingStreet": "1 Main St",
        "BillingCity": None,
        "BillingAddress": {"street": "1 Main St", "city": None},
        "AnnualRevenue": 15000.0,
        "NumberOfEmployees": 42,
        "IsDeleted": False,
        "ParentId": None,
        "Parent": None,
        "SystemModstamp": "2024-01-31T09:05:07.000+0000",
        "LastActivityDate": "2024-01-30",
    }
    header = [
        "Id",
        "Name",
        "BillingStreet",
        "BillingCity",
        "AnnualRevenue",
        "NumberOfEmployees",
        "IsDeleted",
        "ParentId",
        "SystemModstamp",
        "LastActivityDate",
    ]
    row = [
        "001000000000001AAA",
        'Acme, "the" company\nLine 2',
        "1 Main St",
        "",
        "15000",
        "42",
        "false",
        "",
        "2024-01-31T09:05:07.000Z",
        "2024-01-30",
    ]
    from_rest = canonical_from_rest(rest, specs)
    from_csv = canonical_from_csv(header, row, specs)
    assert from_rest == from_csv
    assert json.dumps(from_rest) == json.dumps(from_csv)  # same types and key order, not just ==
    assert "attributes" not in from_rest and "BillingAddress" not in from_rest and "Parent" not in from_rest
    assert from_rest["AnnualRevenue"] == 15000.0 and isinstance(from_rest["AnnualRevenue"], float)
    assert from_rest["SystemModstamp"] == "2024-01-31T09:05:07.000+0000"
    assert list(from_rest) == [n for n, _ in specs]


@pytest.mark.parametrize(
    ("value", "ftype", "expected"),
    [
        ("true", "boolean", True),
        ("FALSE", "boolean", False),
        (True, "boolean", True),
        ("7", "int", 7),
        (7.0, "int", 7),
        ("12345678901234", "long", 12345678901234),
        ("3.5", "percent", 3.5),
        (3, "double", 3.0),
        ("", "string", None),
        ("", "boolean", None),
        (None, "datetime", None),
        ("2024-01-31T10:05:07.123+01:00", "datetime", "2024-01-31T09:05:07.123+0000"),
        ("2024-01-31T09:05:07Z", "datetime", "2024-01-31T09:05:07.000+0000"),
        ("2024-01-31T09:05:07.000+0000", "datetime", "2024-01-31T09:05:07.000+0000"),
        ("2024-01-31", "date", "2024-01-31"),
        ("13:45:00.000Z", "time", "13:45:00.000Z"),
        ("13:45", "time", "13:45:00.000Z"),
        (5, "string", "5"),
        (True, "anyType", "true"),
    ],
)
def test_canonical_value(value: object, ftype: str, expected: object) -> None:
    got = canonical_value(value, ftype)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "ftype"),
    [
        ("yes", "boolean"),
        ("7.5", "int"),
        ("abc", "double"),
        ("nan", "double"),
        ("31/01/2024", "date"),
        ("yesterday", "datetime"),
        ("noon", "time"),
        ({"city": "x"}, "string"),
        (True, "int"),
    ],
)
def test_values_that_are_not_their_type_are_rejected(value: object, ftype: str) -> None:
    with pytest.raises(ValueError):
        canonical_value(value, ftype)


def test_field_specs_use_describe_spelling_drop_compound_and_reject_relationships() -> None:
    assert field_specs(ACCOUNT, ["id", "billingaddress", "billingcity"]) == [
        ("Id", "id"),
        ("BillingCity", "string"),
    ]
    with pytest.raises(ValueError, match="relationship"):
        field_specs(ACCOUNT, ["Parent.Name"])
    with pytest.raises(ValueError, match="no field"):
        field_specs(ACCOUNT, ["Nope__c"])


def test_csv_mapper_ignores_extra_columns_and_rejects_missing_ones() -> None:
    specs = [("Id", "id"), ("Name", "string")]
    mapper = CsvRowMapper(["Name", "Account.Name", "Id"], specs)
    assert mapper(["n", "parent", "001"]) == {"Id": "001", "Name": "n"}
    with pytest.raises(ValueError, match="cells"):
        mapper(["n", "parent"])
    with pytest.raises(ValueError, match="lack the column"):
        CsvRowMapper(["Id"], specs)


def test_rest_field_names_match_case_insensitively_and_missing_is_none() -> None:
    assert canonical_from_rest(
        {"id": "001", "NAME": "x"}, [("Id", "id"), ("Name", "string"), ("Foo", "int")]
    ) == {
        "Id": "001",
        "Name": "x",
        "Foo": None,
    }


def test_python_typed_values_from_a_ground_truth_are_accepted() -> None:
    from datetime import date, time

    specs = [("D", "date"), ("T", "datetime"), ("H", "time")]
    values = {
        "D": date(2024, 1, 30),
        "T": datetime(2024, 1, 31, 10, 5, 7, 123000, tzinfo=UTC) + timedelta(0),
        "H": time(13, 45, 1, 500000),
    }
    assert canonical_from_rest(values, specs) == {
        "D": "2024-01-30",
        "T": "2024-01-31T10:05:07.123+0000",
        "H": "13:45:01.500Z",
    }


def test_datetime_helpers_round_trip() -> None:
    dt = datetime(2024, 1, 31, 9, 5, 7, 123000, tzinfo=UTC)
    assert format_datetime(dt) == "2024-01-31T09:05:07.123+0000"
    assert parse_datetime(format_datetime(dt)) == dt
    assert soql_datetime("2024-01-31T10:05:07.123+01:00") == "2024-01-31T09:05:07.123Z"
    assert format_datetime(datetime(2024, 1, 31, 9, 5, 7)) == "2024-01-31T09:05:07.000+0000"


# --- property: any record rendered as Salesforce REST JSON and as Bulk CSV → same canonical dict -----

TYPES = [
    "id",
    "string",
    "textarea",
    "picklist",
    "email",
    "boolean",
    "int",
    "long",
    "double",
    "currency",
    "percent",
    "date",
    "datetime",
    "time",
    "reference",
]

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_dt = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=(d.microsecond // 1000) * 1000, tzinfo=UTC)
)


def _value(ftype: str) -> st.SearchStrategy[object]:
    if ftype == "boolean":
        return st.booleans()
    if ftype in ("int", "long"):
        return st.integers(-(2**53), 2**53)
    if ftype in ("double", "currency", "percent"):
        return st.one_of(
            st.integers(-(10**12), 10**12).map(float),
            st.floats(allow_nan=False, allow_infinity=False, width=64),
        )
    if ftype == "date":
        return st.dates().map(lambda d: d.isoformat())
    if ftype == "datetime":
        return _dt
    if ftype == "time":
        return st.times().map(lambda t: t.replace(microsecond=(t.microsecond // 1000) * 1000))
    return st.one_of(st.none(), _text)


@st.composite
def records(draw: st.DrawFn) -> tuple[list[tuple[str, str]], dict[str, object]]:
    types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=12))
    specs = [(f"F{i}__c", t) for i, t in enumerate(types)]
    values = {
        name: draw(st.one_of(st.none(), _value(t))) if t != "boolean" else draw(_value(t))
        for name, t in specs
    }
    return specs, values


def _rest_json(ftype: str, v: object) -> object:
    """As Salesforce's REST API writes the value (then through a JSON round trip)."""
    if v is None or v == "":
        return None  # Salesforce stores "" as null
    if ftype == "datetime":
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"  # type: ignore[union-attr]
    if ftype == "time":
        return v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"  # type: ignore[union-attr]
    return v


def _csv_text(ftype: str, v: object, offset_hours: int) -> str:
    """As Bulk API 2.0 writes the value into CSV."""
    if v is None:
        return ""
    if ftype == "boolean":
        return "true" if v else "false"
    if ftype == "datetime":
        local = v.astimezone(UTC) + timedelta(hours=offset_hours)  # type: ignore[union-attr]
        suffix = "Z" if offset_hours == 0 else f"{offset_hours:+03d}:00"
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}{suffix}"
    if ftype == "time":
        return v.strftime("%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"  # type: ignore[union-attr]
    if ftype in ("double", "currency", "percent"):
        f = float(v)  # type: ignore[arg-type]
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    return str(v)


@settings(max_examples=300, deadline=None)
@given(records(), st.integers(-12, 14))
def test_property_rest_and_bulk_renderings_give_the_same_canonical_dict(
    rec: tuple[list[tuple[str, str]], dict[str, object]], offset_hours: int
) -> None:
    specs, values = rec
    rest_record = {"attributes": {"type": "X__c", "url": "/x"}}
    rest_record.update({n: _rest_json(t, values[n]) for n, t in specs})
    rest_record = json.loads(json.dumps(rest_record))  # what the HTTP client actually sees

    buf = io.StringIO(newline="")
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow([n for n, _ in specs])
    writer.writerow([_csv_text(t, values[n], offset_hours) for n, t in specs])
    header, row = list(csv.reader(io.StringIO(buf.getvalue(), newline=""), strict=True))

    from_rest = canonical_from_rest(rest_record, specs)
    mapper = CsvRowMapper(header, specs)
    from_csv = mapper(row)
    assert from_rest == from_csv
    assert json.dumps(from_rest) == json.dumps(from_csv)
    # the column-wise batch path (what the Bulk adapter uses) gives the very same dict
    (batched,) = mapper.rows([row])
    assert json.dumps(batched) == json.dumps(from_csv)
    assert list(batched) == [n for n, _ in specs]


_ANY_TYPES = [*TYPES, "multipicklist", "url", "anyType", "json", "encryptedstring"]
_cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    _text,
    st.sampled_from(
        [
            "true",
            "false",
            "0",
            "-0",
            "1e3",
            "2024-01-31T09:05:07.000Z",
            "2024-01-31T09:05:07.000+0000",
            "2024-01-31",
            "13:45:00.000Z",
            "12",
            "-5",
            "١٢",
            "inf",
            "NaN",
            " 7 ",
        ]
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(_ANY_TYPES), _cells)
def test_property_fast_converters_agree_with_canonical_value(ftype: str, value: object) -> None:
    from orgvault.domain.records import converter

    try:
        expected = canonical_value(value, ftype)
    except (ValueError, TypeError, OverflowError):
        with pytest.raises((ValueError, TypeError, OverflowError)):
            converter(ftype)(value)
        return
    got = converter(ftype)(value)
    assert got == expected and type(got) is type(expected)


_csv_cells = st.one_of(
    _text,
    st.sampled_from(
        [
            "",
            "true",
            "false",
            "0",
            "-0",
            "1.5",
            "1e3",
            "12",
            "-5",
            "NaN",
            "inf",
            " 7 ",
            "2024-01-31",
            "2024-01-31T09:05:07.000Z",
            "2024-01-31T09:05:07.123+0000",
            "2024-01-31T09:05:07Z",
            "2024-01-31T09:05:07.000+02:00",
            "2024-01-31T09:05:07.000z",
            "13:45:00.000Z",
            "x" * 24,
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_ANY_TYPES), min_size=1, max_size=8).flatmap(
        lambda types: st.tuples(
            st.just(types),
            st.lists(st.lists(_csv_cells, min_size=len(types), max_size=len(types)), max_size=6),
        )
    )
)
def test_property_csv_batch_conversion_equals_row_by_row(case: tuple[list[str], list[list[str]]]) -> None:
    """``CsvRowMapper.rows`` (column-wise) == ``CsvRowMapper.__call__`` per row: same dicts, same
    key order, same JSON text; a cell one path rejects, the other rejects too."""
    types, rows = case
    specs = [(f"F{i}__c", t) for i, t in enumerate(types)]
    header = ["Extra"] + [n for n, _ in reversed(specs)]  # column order differs from field order
    csv_rows = [["e"] + list(reversed(r)) for r in rows]
    mapper = CsvRowMapper(header, specs)
    try:
        expected = [mapper(r) for r in csv_rows]
    except ValueError:
        with pytest.raises(ValueError):
            mapper.rows(csv_rows)
        return
    got = mapper.rows(csv_rows)
    assert json.dumps(got) == json.dumps(expected)
    assert [list(d) for d in got] == [list(d) for d in expected]


def test_csv_batch_rejects_a_row_of_another_width() -> None:
    mapper = CsvRowMapper(["Id", "Name"], [("Id", "id"), ("Name", "string")])
    assert mapper.rows([["001", ""], ["002", "B"]]) == [
        {"Id": "001", "Name": None},
        {"Id": "002", "Name": "B"},
    ]
    with pytest.raises(ValueError, match="cells"):
        mapper.rows([["001", "A"], ["002"]])
