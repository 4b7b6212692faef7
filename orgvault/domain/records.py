"""Canonical record values: one form for a record whether it came from REST JSON or Bulk 2.0 CSV.

A backup must not depend on which API read a record: the same record read through REST
``queryAll`` and through a Bulk API 2.0 ``queryAll`` job normalizes to the SAME ``dict`` (same keys,
same order, same Python types, same text), so chunks, hashes and diffs are stable when the
strategy changes (e.g. a runtime fall-back from Bulk to REST).

Contract of the canonical form (per selected field, keys in the order of ``fields``):

* ``attributes`` is dropped; only the selected fields appear; a selected field missing from the
  response is ``None``.
* compound fields (``address``, ``location``) are removed; their components (``BillingStreet``,
  ``Geo__Latitude__s``, ...) are ordinary fields and are kept when selected.
* relationship objects (``Account: {...}``) are never part of a record (the plan selects no
  ``Parent.Field`` columns); dotted names are rejected by :func:`field_specs`.
* ``null``, a missing value and an empty string are all ``None``. Salesforce stores ``""`` as null
  (a text field set to ``""`` reads back as ``null`` through REST), and Bulk CSV writes null as an
  empty cell, so this loses nothing.
* ``boolean`` → ``bool``; ``int`` / ``long`` → ``int``; ``double`` / ``currency`` / ``percent`` →
  ``float`` (Salesforce's JSON writes these as doubles: ``15000.0``); latitude/longitude
  components are doubles too.
* ``date`` → ``"YYYY-MM-DD"``; ``datetime`` → ``"YYYY-MM-DDTHH:MM:SS.sss+0000"`` in UTC (the REST
  form; Bulk's ``...Z`` and any other offset are converted); ``time`` → ``"HH:MM:SS.sssZ"`` (the
  REST form).
* Python ``datetime``/``date``/``time`` values (an emulator's or a test's ground truth) are accepted
  and rendered as above.
* everything else (id, reference, string, textarea, picklist, email, url, phone, encryptedstring,
  anyType, json, base64 when selected, ...) → ``str``; an ``anyType`` boolean is ``"true"``/``"false"``
  as Bulk writes it.

Pure: no I/O. Errors: ``ValueError`` for a value that cannot be read as its declared type (the
adapter turns it into a ``SalesforceRequestError`` naming the object and field).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ObjectSchema is the port's value type; the domain only reads it
    from orgvault.ports import ObjectSchema


COMPOUND_TYPES = frozenset({"address", "location"})
BOOLEAN_TYPES = frozenset({"boolean"})
INTEGER_TYPES = frozenset({"int", "long"})
DOUBLE_TYPES = frozenset({"double", "currency", "percent"})

# A (field name, Salesforce field type) pair. Plain tuples/lists so they can live in a JSON cursor.
FieldSpec = tuple[str, str]

_DATETIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_TIME_RE = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$")
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


def field_specs(schema: ObjectSchema, names: Iterable[str]) -> list[FieldSpec]:
    """The ``(name, type)`` pairs for ``names`` of ``schema``, with the describe's spelling of each
    name. Unknown names raise ``ValueError``; compound fields are dropped (read their components)."""
    specs: list[FieldSpec] = []
    for name in names:
        if "." in name:
            raise ValueError(f"{schema.name}.{name}: relationship fields are not part of a record")
        info = schema.field(name)
        if info is None:
            raise ValueError(f"{schema.name} has no field {name!r}")
        if info.type in COMPOUND_TYPES:
            continue
        specs.append((info.name, info.type))
    return specs


def format_datetime(value: datetime) -> str:
    """A datetime in Salesforce REST text form, UTC, milliseconds: ``2024-01-31T09:05:00.000+0000``.
    Naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """Parse any Salesforce datetime text (REST ``.000+0000``, Bulk ``.000Z``, SOQL literal ``Z`` or
    ``+00:00``) into an aware UTC datetime. ``ValueError`` if it is not one."""
    m = _DATETIME_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a Salesforce datetime: {text!r}")
    day, hh, mm, ss, frac, tz = m.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    base = datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss or '00'}").replace(microsecond=micro)
    if tz in (None, "Z"):
        return base.replace(tzinfo=UTC)
    tz = tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"
    return datetime.fromisoformat(base.isoformat() + tz).astimezone(UTC)


def soql_datetime(value: datetime | str) -> str:
    """A SOQL datetime literal (unquoted) for a WHERE clause: ``2024-01-31T09:05:00.000Z``."""
    dt = parse_datetime(value) if isinstance(value, str) else value
    return format_datetime(dt).replace("+0000", "Z")


def _canonical_time(text: str) -> str:
    m = _TIME_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a Salesforce time: {text!r}")
    hh, mm, ss, frac, _tz = m.groups()
    millis = (frac or "0").ljust(3, "0")[:3]
    return f"{hh}:{mm}:{ss or '00'}.{millis}Z"


def canonical_value(value: Any, field_type: str) -> Any:
    """Normalize one value of a field of ``field_type`` (see the module contract). Accepts what
    REST JSON gives (typed values) and what Bulk CSV gives (text)."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):  # a relationship or compound object leaked into a column
        raise ValueError(f"structured value where a {field_type} was expected")
    ftype = field_type.lower()
    if ftype in BOOLEAN_TYPES:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if ftype in INTEGER_TYPES:
        if isinstance(value, bool):
            raise ValueError(f"not an integer: {value!r}")
        if isinstance(value, int):
            return value
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return int(number)
    if ftype in DOUBLE_TYPES:
        if isinstance(value, bool):
            raise ValueError(f"not a number: {value!r}")
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise ValueError(f"not a finite number: {value!r}")
        return number if number != 0 else 0.0  # no negative zero: CSV may write "-0" or "0"
    if isinstance(value, datetime):
        value = format_datetime(value)
    elif isinstance(value, date):
        value = value.isoformat()
    elif isinstance(value, time):
        value = value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if ftype == "date":
        m = _DATE_RE.match(str(value).strip())
        if not m:
            raise ValueError(f"not a date: {value!r}")
        return "-".join(m.groups())
    if ftype == "datetime":
        return format_datetime(parse_datetime(str(value)))
    if ftype == "time":
        return _canonical_time(str(value))
    if isinstance(value, bool):  # anyType holding a boolean: the CSV spelling
        return "true" if value else "false"
    return str(value)


_STRING_LIKE = frozenset(
    {
        "id",
        "reference",
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "email",
        "phone",
        "url",
        "encryptedstring",
        "json",
    }
)
_BOOLS = {"true": True, "false": False, True: True, False: False}


def converter(field_type: str) -> Callable[[Any], Any]:
    """A function equal to ``lambda v: canonical_value(v, field_type)`` but with a fast path for the
    common shapes (plain text, ``true``/``false``, REST and Bulk datetimes); anything else goes
    through :func:`canonical_value`. Used per column so a million rows cost little."""
    ftype = field_type.lower()

    def slow(v: Any) -> Any:
        return canonical_value(v, ftype)

    if ftype in _STRING_LIKE:

        def text(v: Any) -> Any:
            if v.__class__ is str:
                return v or None
            return None if v is None else slow(v)

        return text
    if ftype in BOOLEAN_TYPES:

        def boolean(v: Any) -> Any:
            b = _BOOLS.get(v) if v.__class__ in (str, bool) else None
            return b if b is not None else slow(v)

        return boolean
    if ftype == "datetime":

        def dt(v: Any) -> Any:
            # "2024-01-01T00:00:00.000+0000" (REST) / "...000Z" (Bulk) are already canonical modulo suffix
            if v.__class__ is str and len(v) >= 24 and v[10] == "T" and v[19] == ".":
                if len(v) == 28 and v.endswith("+0000"):
                    return v
                if len(v) == 24 and v[23] == "Z":
                    return v[:23] + "+0000"
            return slow(v)

        return dt
    if ftype in INTEGER_TYPES:

        def integer(v: Any) -> Any:
            if v.__class__ is int:
                return v
            if v.__class__ is str and v.isdigit():
                return int(v)
            return slow(v)

        return integer
    if ftype in DOUBLE_TYPES:

        def double(v: Any) -> Any:
            if v.__class__ is float and v - v == 0:  # finite
                return v if v else 0.0
            if v.__class__ is str and v:
                try:
                    f = float(v)
                except ValueError:
                    return slow(v)
                if f - f == 0:
                    return f if f else 0.0
            return slow(v)

        return double
    if ftype == "time":

        def clock(v: Any) -> Any:
            if v.__class__ is str and len(v) == 13 and v[12] == "Z" and v[8] == ".":
                return v
            return slow(v)

        return clock
    if ftype == "date":

        def day(v: Any) -> Any:
            if v.__class__ is str and len(v) == 10 and v[4] == "-" and v[7] == "-":
                return v
            return slow(v)

        return day
    return slow


def _lookup(record: Mapping[str, Any], name: str, lowered: dict[str, str] | None) -> Any:
    if name in record:
        return record[name]
    if lowered is None:
        return None
    key = lowered.get(name.lower())
    return record[key] if key is not None else None


def canonical_from_rest(record: Mapping[str, Any], fields: Sequence[FieldSpec]) -> dict[str, Any]:
    """A REST ``query``/``queryAll`` record → its canonical dict with exactly the (non-compound)
    ``fields``, in that order. Field names match case-insensitively. For many records of one
    query, :class:`RestRecordMapper` is faster."""
    return RestRecordMapper(fields)(record)


class RestRecordMapper:
    """Turns REST records of one query into canonical dicts (see :func:`canonical_from_rest`)."""

    def __init__(self, fields: Sequence[FieldSpec]) -> None:
        self._plan = [
            (name, converter(ftype)) for name, ftype in fields if ftype.lower() not in COMPOUND_TYPES
        ]

    def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return {name: conv(record[name]) for name, conv in self._plan}
        except KeyError:
            lowered = {k.lower(): k for k in record}
            return {name: conv(_lookup(record, name, lowered)) for name, conv in self._plan}


_CSV_BOOLS: dict[str, bool | None] = {"true": True, "false": False, "": None}


def _cell_expr(kind: str, pos: int, conv: str) -> str:
    """Source of the expression converting ``row[pos]`` (see :func:`_compile_row_mapper`)."""
    if kind == "text":  # "" -> None, any other text as is (what ``converter`` gives for a str)
        return f"row[{pos}] or None"
    if kind == "boolean":
        return f"_BOOLS[v] if (v := row[{pos}]) in _BOOLS else {conv}(v)"
    if kind == "datetime":  # Bulk's "...000Z" is canonical with "+0000"; anything else -> converter
        return (
            f'((v[:23] + "+0000" if len(v) == 24 and v[23] == "Z" and v[10] == "T" and v[19] == "." '
            f"else {conv}(v)) if (v := row[{pos}]) else None)"
        )
    return f"{conv}(v) if (v := row[{pos}]) else None"


def _compile_row_mapper(
    plan: Sequence[tuple[str, str, Callable[[Any], Any], int]],
) -> Callable[[Sequence[str]], dict[str, Any]]:
    """One function per CSV header turning a row (list of cells) into its canonical dict: a single
    dict display with the field names as constants and each column's conversion inlined (text
    columns need no call at all), so a row costs no per-cell type dispatch. Equal to
    ``{name: converter(type)(row[pos]) if row[pos] else None ...}``; names are passed as constants
    (``repr``), never as code."""
    env: dict[str, Any] = {"_BOOLS": _CSV_BOOLS}
    items = []
    for i, (name, kind, conv, pos) in enumerate(plan):
        env[f"_c{i}"] = conv
        items.append(f"{name!r}: ({_cell_expr(kind, pos, f'_c{i}')})")
    src = "def _map_row(row):\n    return {" + ", ".join(items) + "}\n"
    exec(compile(src, "<orgvault.records.csv_row>", "exec"), env)  # noqa: S102 - generated from constants
    fn: Callable[[Sequence[str]], dict[str, Any]] = env["_map_row"]
    return fn


def _cell_kind(ftype: str) -> str:
    ftype = ftype.lower()
    if ftype in _STRING_LIKE:
        return "text"
    if ftype == "datetime":
        return "datetime"
    if ftype in BOOLEAN_TYPES:
        return "boolean"
    return "other"


class CsvRowMapper:
    """Turns Bulk API 2.0 CSV rows into canonical dicts. Built once per results page from the
    header row; columns not selected (e.g. ``Account.Name``) are ignored; a selected field absent
    from the header raises ``ValueError`` (the job was not the query we asked for).

    ``mapper(row)`` converts one row; ``mapper.rows(rows)`` converts many (same dicts as
    ``[mapper(r) for r in rows]``). Conversion runs through one generated function per header (see
    :func:`_compile_row_mapper`): per-column converters fixed up front, no per-cell dispatch."""

    def __init__(self, header: Sequence[str], fields: Sequence[FieldSpec]) -> None:
        index = {h.strip().lower(): i for i, h in enumerate(header)}
        plan: list[tuple[str, str, Callable[[Any], Any], int]] = []
        for name, ftype in fields:
            if ftype.lower() in COMPOUND_TYPES:
                continue
            pos = index.get(name.lower())
            if pos is None:
                raise ValueError(f"Bulk results lack the column {name!r}")
            plan.append((name, _cell_kind(ftype), converter(ftype), pos))
        self._map_row = _compile_row_mapper(plan)
        self._width = len(header)

    def __call__(self, row: Sequence[str]) -> dict[str, Any]:
        if len(row) != self._width:
            raise ValueError(f"CSV row has {len(row)} cells, header has {self._width}")
        return self._map_row(row)

    def rows(self, rows: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        """Many rows → their canonical dicts. ``ValueError`` if a row's width differs from the
        header's, or a cell cannot be read as its column's type."""
        width = self._width
        for n in set(map(len, rows)):
            if n != width:
                raise ValueError(f"CSV row has {n} cells, header has {width}")
        return list(map(self._map_row, rows))


def canonical_from_csv(
    header: Sequence[str], row: Sequence[str], fields: Sequence[FieldSpec]
) -> dict[str, Any]:
    """One Bulk CSV row → its canonical dict (convenience over :class:`CsvRowMapper`)."""
    return CsvRowMapper(header, fields)(row)
