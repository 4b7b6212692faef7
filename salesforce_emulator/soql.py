"""The SOQL subset the emulator understands (see SOQL.md), parsed and compiled to SQLite SQL.

:func:`parse` turns text into a small AST; :func:`compile_query` resolves names against the schema and
produces a :class:`Query` whose SQL the org runs with keyset paging. Anything outside the subset raises
``SalesforceError(400, 'MALFORMED_QUERY')`` (or the Bulk API's own refusal) -- never a wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

from .errors import SalesforceError, invalid_type, malformed
from .ids import normalize_id
from .schema import COMPOUND_TYPES, NUMBER_TYPES, STRING_TYPES, FieldDef, ObjectDef

# ------------------------------------------------------------------------------------------ tokens

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?![\w]))
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<reldate>[A-Za-z_]+:\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[(),])
  | (?P<colon>:)
    """,
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    pos: int


class _Unsupported(Exception):
    """A construct outside the subset; ``feature`` lets the Bulk API answer with its own error."""

    def __init__(self, feature: str, message: str):
        super().__init__(message)
        self.feature = feature
        self.message = message


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise malformed(_where(text, pos) + f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "colon":
            raise _Unsupported(
                "date literal",
                _where(text, pos) + "bind variables and date literals with ':' "
                "(e.g. LAST_N_DAYS:n) are not supported by this emulator",
            )
        if kind != "ws":
            toks.append(Tok(kind, m.group(), pos))
        pos = m.end()
    toks.append(Tok("eof", "", len(text)))
    return toks


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"ERROR at Row:{line}:Column:{col}\n"


# --------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Lit:
    kind: str  # string | number | date | datetime | bool | null
    value: object
    pos: int


@dataclass(frozen=True)
class Cond:
    path: tuple[str, ...]
    op: str  # = != < <= > >= LIKE IN NOTIN
    value: Lit | tuple[Lit, ...]
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR | NOT
    args: tuple


@dataclass(frozen=True)
class OrderItem:
    path: tuple[str, ...]
    desc: bool
    nulls_last: bool | None
    pos: int


@dataclass(frozen=True)
class Select:
    fields: tuple[tuple[tuple[str, ...], int], ...]  # (path, pos)
    is_count: bool
    sobject: str
    sobject_pos: int
    where: Cond | BoolOp | None
    order: tuple[OrderItem, ...]
    limit: int | None


_AGGREGATES = {
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "count_distinct",
    "calendar_year",
    "calendar_month",
    "day_only",
    "fiscal_year",
    "hour_in_day",
    "week_in_year",
    "convertcurrency",
    "tolabel",
    "format",
    "grouping",
    "distance",
    "geolocation",
}
_CLAUSE_END = {
    "from",
    "where",
    "order",
    "limit",
    "group",
    "having",
    "offset",
    "for",
    "with",
    "using",
    "update",
    "all",
}
_DATE_LITERALS = {
    "today",
    "yesterday",
    "tomorrow",
    "this_week",
    "last_week",
    "next_week",
    "this_month",
    "last_month",
    "next_month",
    "this_year",
    "last_year",
    "next_year",
    "last_90_days",
    "next_90_days",
    "this_quarter",
    "last_quarter",
    "next_quarter",
}


_SIMPLE_DATE_LITERALS = {
    "today", "yesterday", "tomorrow", "this_month", "last_month", "next_month", "this_year", "last_year",
    "next_year",
}  # fmt: skip
_N_DATE_LITERALS = {"last_n_days", "next_n_days", "n_days_ago"}


def date_literal_range(name: str, n: int, today: date) -> tuple[date, date]:
    """[start, end) of a relative date literal (UTC days), as Salesforce defines them."""
    one = timedelta(days=1)
    if name == "today":
        return today, today + one
    if name == "yesterday":
        return today - one, today
    if name == "tomorrow":
        return today + one, today + 2 * one
    if name == "last_n_days":
        return today - n * one, today + one
    if name == "next_n_days":
        return today + one, today + (n + 1) * one
    if name == "n_days_ago":
        return today - n * one, today - (n - 1) * one
    first = today.replace(day=1)
    if name.endswith("_month"):
        month = first.month + {"this_month": 0, "last_month": -1, "next_month": 1}[name]
        y, m = first.year + (month - 1) // 12, (month - 1) % 12 + 1
        start = date(y, m, 1)
        return start, date(y + m // 12, m % 12 + 1, 1)
    year = today.year + {"this_year": 0, "last_year": -1, "next_year": 1}[name]
    return date(year, 1, 1), date(year + 1, 1, 1)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    # helpers
    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_kw(self, word: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t.kind == "ident" and t.text.lower() == word

    def expect_kw(self, word: str) -> Tok:
        t = self.peek()
        if not self.is_kw(word):
            self.fail(t, f"unexpected token: '{t.text or '<end of query>'}', expecting {word.upper()}")
        return self.next()

    def expect(self, kind: str, text: str | None = None) -> Tok:
        t = self.peek()
        if t.kind != kind or (text is not None and t.text != text):
            self.fail(t, f"unexpected token: '{t.text or '<end of query>'}', expecting '{text or kind}'")
        return self.next()

    def fail(self, tok: Tok, message: str) -> None:
        raise malformed(_where(self.text, tok.pos) + message)

    # grammar
    def parse(self) -> Select:
        self.expect_kw("select")
        fields: list[tuple[tuple[str, ...], int]] = []
        is_count = False
        if self.is_kw("count") and self.peek(1).text == "(" and self.peek(2).text == ")":
            self.i += 3
            is_count = True
        else:
            while True:
                t = self.peek()
                if t.text == "(":
                    raise _Unsupported(
                        "subquery", _where(self.text, t.pos) + "parent-to-child subqueries are not supported"
                    )
                if t.kind != "ident":
                    self.fail(t, f"unexpected token: '{t.text or '<end of query>'}'")
                low = t.text.lower()
                if low == "typeof":
                    raise _Unsupported("typeof", _where(self.text, t.pos) + "TYPEOF is not supported")
                if self.peek(1).text == "(":
                    if low == "fields":
                        raise _Unsupported("fields", _where(self.text, t.pos) + "FIELDS() is not supported")
                    if low in _AGGREGATES:
                        raise _Unsupported(
                            "aggregate", _where(self.text, t.pos) + f"function {t.text}() is not supported"
                        )
                    self.fail(t, f"unknown function {t.text}()")
                if low in _CLAUSE_END and not fields:
                    self.fail(t, f"unexpected token: '{t.text}'")
                self.next()
                fields.append((tuple(t.text.split(".")), t.pos))
                if self.peek().text == ",":
                    self.next()
                    continue
                if self.peek().kind == "ident" and not self.is_kw("from"):
                    # e.g. an alias: "SELECT Name n FROM Account"
                    self.fail(self.peek(), f"unexpected token: '{self.peek().text}'")
                break
        self.expect_kw("from")
        obj = self.expect("ident")
        if "." in obj.text:
            self.fail(obj, f"unexpected token: '{obj.text}'")
        if self.peek().kind == "ident" and self.peek().text.lower() not in _CLAUSE_END:
            raise _Unsupported(
                "alias", _where(self.text, self.peek().pos) + "object aliases are not supported"
            )
        where = None
        order: list[OrderItem] = []
        limit = None
        if self.is_kw("using"):
            raise _Unsupported("scope", _where(self.text, self.peek().pos) + "USING SCOPE is not supported")
        if self.is_kw("with"):
            raise _Unsupported("with", _where(self.text, self.peek().pos) + "WITH is not supported")
        if self.is_kw("where"):
            self.next()
            where = self.parse_or()
        if self.is_kw("group") or self.is_kw("having"):
            raise _Unsupported(
                "group by", _where(self.text, self.peek().pos) + "GROUP BY / HAVING are not supported"
            )
        if self.is_kw("order"):
            self.next()
            self.expect_kw("by")
            while True:
                t = self.expect("ident")
                if self.peek().text == "(":
                    raise _Unsupported(
                        "aggregate", _where(self.text, t.pos) + "functions in ORDER BY are not supported"
                    )
                desc = False
                nulls_last: bool | None = None
                if self.is_kw("asc"):
                    self.next()
                elif self.is_kw("desc"):
                    self.next()
                    desc = True
                if self.is_kw("nulls"):
                    self.next()
                    w = self.expect("ident")
                    if w.text.lower() not in ("first", "last"):
                        self.fail(w, f"unexpected token: '{w.text}', expecting FIRST or LAST")
                    nulls_last = w.text.lower() == "last"
                order.append(OrderItem(tuple(t.text.split(".")), desc, nulls_last, t.pos))
                if self.peek().text == ",":
                    self.next()
                    continue
                break
        if self.is_kw("limit"):
            self.next()
            t = self.expect("number")
            if not re.fullmatch(r"\d+", t.text):
                self.fail(t, f"LIMIT must be a non-negative integer, not {t.text}")
            limit = int(t.text)
        if self.is_kw("offset"):
            raise _Unsupported("offset", _where(self.text, self.peek().pos) + "OFFSET is not supported")
        if self.is_kw("for") or self.is_kw("update") or self.is_kw("all"):
            raise _Unsupported(
                "for",
                _where(self.text, self.peek().pos) + f"{self.peek().text.upper()} clauses are not supported",
            )
        t = self.peek()
        if t.kind != "eof":
            self.fail(t, f"unexpected token: '{t.text}'")
        return Select(tuple(fields), is_count, obj.text, obj.pos, where, tuple(order), limit)

    def parse_or(self):
        args = [self.parse_and()]
        while self.is_kw("or"):
            self.next()
            args.append(self.parse_and())
        return args[0] if len(args) == 1 else BoolOp("OR", tuple(args))

    def parse_and(self):
        args = [self.parse_not()]
        while self.is_kw("and"):
            self.next()
            args.append(self.parse_not())
        return args[0] if len(args) == 1 else BoolOp("AND", tuple(args))

    def parse_not(self):
        if self.is_kw("not"):
            self.next()
            return BoolOp("NOT", (self.parse_not(),))
        if self.peek().text == "(":
            self.next()
            e = self.parse_or()
            self.expect("punct", ")")
            return e
        return self.parse_cond()

    def parse_cond(self) -> Cond:
        t = self.peek()
        if t.kind != "ident" or t.text.lower() in ("and", "or", "not"):
            self.fail(t, f"unexpected token: '{t.text or '<end of query>'}'")
        self.next()
        if self.peek().text == "(":
            raise _Unsupported(
                "function", _where(self.text, t.pos) + f"functions in WHERE ({t.text}()) are not supported"
            )
        path = tuple(t.text.split("."))
        op_tok = self.peek()
        if op_tok.kind == "op":
            self.next()
            op = "!=" if op_tok.text == "<>" else op_tok.text
            return Cond(path, op, self.parse_lit(), t.pos)
        low = op_tok.text.lower() if op_tok.kind == "ident" else ""
        if low == "like":
            self.next()
            return Cond(path, "LIKE", self.parse_lit(), t.pos)
        if low == "in" or (low == "not" and self.is_kw("in", 1)):
            self.i += 1 if low == "in" else 2
            self.expect("punct", "(")
            if self.is_kw("select"):
                raise _Unsupported(
                    "semi-join",
                    _where(self.text, self.peek().pos)
                    + "semi-join and anti-join subqueries are not supported",
                )
            vals = [self.parse_lit()]
            while self.peek().text == ",":
                self.next()
                vals.append(self.parse_lit())
            self.expect("punct", ")")
            return Cond(path, "IN" if low == "in" else "NOTIN", tuple(vals), t.pos)
        if low in ("includes", "excludes"):
            raise _Unsupported("includes", _where(self.text, op_tok.pos) + f"{low.upper()} is not supported")
        self.fail(op_tok, f"unexpected token: '{op_tok.text or '<end of query>'}', expecting an operator")
        raise AssertionError  # pragma: no cover

    def parse_lit(self) -> Lit:
        t = self.next()
        if t.kind == "string":
            body = t.text[1:-1]
            out = []
            i = 0
            while i < len(body):
                ch = body[i]
                if ch == "\\" and i + 1 < len(body):
                    nxt = body[i + 1]
                    if nxt in _ESCAPES:
                        out.append(_ESCAPES[nxt])
                    elif nxt in "%_":
                        out.append("\\" + nxt)  # kept for LIKE; unescaped for other operators
                    else:
                        self.fail(t, f"invalid escape sequence \\{nxt}")
                    i += 2
                    continue
                out.append(ch)
                i += 1
            return Lit("string", "".join(out), t.pos)
        if t.kind == "number":
            v: object = float(t.text) if ("." in t.text) else int(t.text)
            return Lit("number", v, t.pos)
        if t.kind == "date":
            try:
                datetime.strptime(t.text, "%Y-%m-%d")
            except ValueError:
                self.fail(t, f"invalid date: {t.text}")
            return Lit("date", t.text, t.pos)
        if t.kind == "datetime":
            return Lit("datetime", _norm_datetime_literal(t.text, lambda m: self.fail(t, m)), t.pos)
        if t.kind == "reldate":
            name, _, n = t.text.partition(":")
            if name.lower() not in _N_DATE_LITERALS:
                raise _Unsupported(
                    "date literal",
                    _where(self.text, t.pos) + f"date literal {t.text} is not supported by this emulator",
                )
            return Lit("reldate", (name.lower(), int(n)), t.pos)
        if t.kind == "ident":
            low = t.text.lower()
            if low in _SIMPLE_DATE_LITERALS:
                return Lit("reldate", (low, 0), t.pos)
            if low in ("true", "false"):
                return Lit("bool", low == "true", t.pos)
            if low == "null":
                return Lit("null", None, t.pos)
            if low in _DATE_LITERALS:
                raise _Unsupported(
                    "date literal",
                    _where(self.text, t.pos) + f"date literal {t.text} is not supported by this emulator",
                )
        self.fail(t, f"unexpected token: '{t.text or '<end of query>'}', expecting a value")
        raise AssertionError  # pragma: no cover


def _norm_datetime_literal(text: str, fail: Callable[[str], None]) -> str:
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):?(\d{2}))", text)
    if not m:
        fail(f"invalid datetime: {text}")
        raise AssertionError  # pragma: no cover
    try:
        base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        fail(f"invalid datetime: {text}")
        raise
    frac = int((m.group(2) or "0")[:3].ljust(3, "0"))
    if m.group(3) == "Z":
        tz = UTC
    else:
        off = timedelta(hours=int(m.group(5)), minutes=int(m.group(6)))
        tz = timezone(off if m.group(4) == "+" else -off)
    dt = base.replace(tzinfo=tz, microsecond=frac * 1000).astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac:03d}Z"


def parse(text: str) -> Select:
    """Parse SOQL into a :class:`Select`; MALFORMED_QUERY for syntax errors and unsupported features."""
    try:
        return _Parser(text).parse()
    except _Unsupported as exc:
        raise malformed(exc.message + " by this emulator") from None


# ------------------------------------------------------------------------------------------ compile


@dataclass(frozen=True)
class Column:
    """A result column: display name (e.g. ``Account.Name``), the leaf field's type, the name path."""

    name: str
    field_type: str
    path: tuple[str, ...]


@dataclass
class Query:
    """A compiled query. ``columns`` are the visible columns; rows from :meth:`Org.fetch` carry
    ``len(columns)`` visible values followed by internal values (ids, sort keys, rowid)."""

    text: str
    object_name: str
    columns: list[Column]
    is_count: bool
    limit: int | None
    include_deleted: bool
    for_bulk: bool
    # internals
    select_sql: list[str] = field(default_factory=list)
    from_sql: str = ""
    where_sql: str = ""
    params: list = field(default_factory=list)
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # (expr, desc, nulls_last)
    id_index: int = 0  # row index of the record Id
    rowid_index: int = 0
    sort_index: int = 0  # first sort key value in a row
    rel_ids: dict[tuple[str, ...], tuple[int, str | None]] = field(default_factory=dict)
    transform: Callable | None = None  # SQL row -> output row
    schema_version: int = 0
    long_text_columns: int = 0  # selected long text area fields (textarea longer than 255)
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # render plans

    @property
    def width(self) -> int:
        return len(self.columns)


class _Resolver:
    """Resolves name paths against the schema, building LEFT JOINs on the way."""

    def __init__(self, objects: dict[str, ObjectDef], base: ObjectDef, text: str, today: date | None = None):
        self.today = today or datetime.now(UTC).date()
        self.objects = objects
        self.base = base
        self.text = text
        self.joins: list[str] = []
        # (alias, relationship lower) -> list of (alias, ObjectDef)
        self.join_map: dict[tuple[str, str], list[tuple[str, ObjectDef]]] = {}
        self.n = 0

    def err_field(self, pos: int, name: str, obj: str) -> SalesforceError:
        return SalesforceError(
            400,
            "INVALID_FIELD",
            _where(self.text, pos)
            + f"No such column '{name}' on entity '{obj}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL "
            "or the describe call for the appropriate names.",
        )

    def resolve(self, path: tuple[str, ...], pos: int):
        """-> (canonical path, FieldDef, sql expressions for the leaf, targets of the last hop, id expr of
        each relationship prefix)."""
        alias_targets: list[tuple[str, ObjectDef]] = [("t", self.base)]
        canon: list[str] = []
        rel_prefixes: list[tuple[tuple[str, ...], str, str | None]] = []
        parts = list(path)
        # a path may be qualified with the object name: "Account.Name" FROM Account
        if (
            len(parts) > 1
            and parts[0].lower() == self.base.name.lower()
            and not self.base.relationship(parts[0])
        ):
            parts = parts[1:]
        poly: FieldDef | None = None
        poly_fk = ""
        for depth, part in enumerate(parts[:-1]):
            if poly is not None or len(alias_targets) != 1:
                raise _Unsupported(
                    "polymorphic",
                    _where(self.text, pos) + f"paths through the polymorphic "
                    f"relationship '{canon[-1]}' are not supported",
                )
            alias, obj = alias_targets[0]
            ref = obj.relationship(part)
            if ref is not None and ref.polymorphic:
                poly, poly_fk = ref, f'{alias}."{ref.name}"'
            else:
                poly, poly_fk = None, ""
            if ref is None:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    _where(self.text, pos) + f"Didn't understand relationship '{part}' in field path. If you "
                    "are attempting to use a custom relationship, be sure to append the '__r' after the custom "
                    "relationship name. Please reference your WSDL or the describe call for the appropriate "
                    "names.",
                )
            canon.append(ref.relationship_name or part)
            key = (alias, ref.relationship_name.lower() if ref.relationship_name else part.lower())
            if key not in self.join_map:
                lst = []
                for target in ref.reference_to:
                    tobj = self.objects.get(target.lower())
                    if tobj is None or not tobj.has_table:
                        continue
                    self.n += 1
                    a = f"j{self.n}"
                    self.joins.append(f'LEFT JOIN "{tobj.name}" {a} ON {a}."Id" = {alias}."{ref.name}"')
                    lst.append((a, tobj))
                self.join_map[key] = lst
            alias_targets = self.join_map[key]
            static_type = ref.reference_to[0] if len(ref.reference_to) == 1 else None
            if len(alias_targets) == 1:
                id_expr = f'{alias_targets[0][0]}."Id"'
            else:
                id_expr = "coalesce(" + ", ".join(f'{a}."Id"' for a, _ in alias_targets) + ")"
            rel_prefixes.append((tuple(canon[: depth + 1]), id_expr, static_type))
        leaf = parts[-1]
        if poly is not None:
            # through a polymorphic relationship only the fields of Salesforce's "Name" entity exist
            if leaf.lower() not in NAME_ENTITY_FIELDS:
                raise self.err_field(pos, leaf, "Name")
            if leaf.lower() == "type":
                cases = " ".join(
                    f"WHEN '{o.key_prefix}' THEN '{o.name}'"
                    for o in (self.objects.get(n.lower()) for n in poly.reference_to)
                    if o is not None and o.key_prefix
                )
                fdef = FieldDef(
                    "Type", "string", length=255, formula=f"CASE substr({poly_fk}, 1, 3) {cases} END"
                )
                canon.append("Type")
                return tuple(canon), fdef, [("t", self.base, fdef)], rel_prefixes
        found: list[tuple[str, ObjectDef, FieldDef]] = []
        for alias, obj in alias_targets:
            f = obj.field(leaf)
            if f is not None:
                found.append((alias, obj, f))
        if not found:
            owner = alias_targets[0][1].name if len(alias_targets) == 1 else (canon[-1] if canon else "?")
            raise self.err_field(pos, leaf if not canon else ".".join(path), owner)
        fdef = found[0][2]
        canon.append(fdef.name)
        return tuple(canon), fdef, [(a, o, f) for a, o, f in found], rel_prefixes


def field_expr(alias: str, f: FieldDef) -> str:
    if f.formula is not None:
        return "(" + f.formula.replace("{t}", alias) + ")"
    return f'{alias}."{f.name}"'


def _leaf_expr(found) -> str:
    exprs = [field_expr(a, f) for a, _, f in found]
    return exprs[0] if len(exprs) == 1 else "coalesce(" + ", ".join(exprs) + ")"


ADDRESS_KEYS = (
    "street",
    "city",
    "state",
    "postalCode",
    "country",
    "latitude",
    "longitude",
    "geocodeAccuracy",
)
ADDRESS_SUFFIXES = (
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
)


def compound_components(obj: ObjectDef, f: FieldDef) -> list[tuple[str, FieldDef]]:
    """(json key, component field) of a compound field, in JSON key order."""
    if f.type == "address":
        prefix = f.name[: -len("Address")]
        pairs = [(k, obj.field(prefix + s)) for k, s in zip(ADDRESS_KEYS, ADDRESS_SUFFIXES, strict=True)]
    else:
        base = f.name[:-3]
        pairs = [
            ("latitude", obj.field(f"{base}__Latitude__s")),
            ("longitude", obj.field(f"{base}__Longitude__s")),
        ]
    out = [(k, c) for k, c in pairs if c is not None]
    return sorted(out, key=lambda kc: kc[0])


NAME_ENTITY_FIELDS = {
    "id",
    "name",
    "type",
    "alias",
    "email",
    "firstname",
    "lastname",
    "isactive",
    "phone",
    "title",
    "username",
    "userroleid",
    "profileid",
    "recordtypeid",
    "lastreferenceddate",
    "lastvieweddate",
    "nameoralias",
}
MAX_SOQL_LENGTH = 100_000
LONG_TEXT_LENGTH = 255  # a textarea longer than this is a long text area
BULK_FEATURES = {"subquery", "fields", "typeof", "aggregate", "offset", "group by"}


def compile_query(
    objects: dict[str, ObjectDef],
    text: str,
    *,
    include_deleted: bool = False,
    for_bulk: bool = False,
    restricted: bool = True,
    today: date | None = None,
) -> Query:
    """Compile SOQL against ``objects`` (lower-case name -> ObjectDef). See :class:`Query`.
    ``restricted=False`` (internal use: record retrieval) lifts per-object query restrictions."""
    if len(text) > MAX_SOQL_LENGTH:
        raise malformed(f"SOQL statements cannot be longer than {MAX_SOQL_LENGTH:,} characters")
    try:
        sel = _Parser(text).parse()
        return _compile(objects, text, sel, include_deleted, for_bulk, restricted, today)
    except _Unsupported as exc:
        if for_bulk and exc.feature in BULK_FEATURES:
            raise SalesforceError(
                400, "FUNCTIONALITY_NOT_ENABLED", exc.message.split("\n", 1)[-1] + " in Bulk API 2.0 queries"
            ) from None
        raise malformed(exc.message + " by this emulator") from None


def _compile(
    objects: dict[str, ObjectDef],
    text: str,
    sel: Select,
    include_deleted: bool,
    for_bulk: bool,
    restricted: bool,
    today: date | None = None,
) -> Query:
    obj = objects.get(sel.sobject.lower())
    if obj is None or not obj.queryable:
        raise invalid_type(sel.sobject)
    if for_bulk and not obj.bulk_supported:
        raise SalesforceError(400, "INVALIDENTITY", f"Entity '{obj.name}' is not supported by the Bulk API.")
    if for_bulk and sel.is_count:  # "Bulk API 2.0 doesn't support ... Aggregate Functions such as COUNT()"
        raise SalesforceError(
            400,
            "FUNCTIONALITY_NOT_ENABLED",
            "Aggregate functions such as COUNT() are not supported in Bulk Query",
        )
    if (
        restricted
        and obj.name == "ContentDocumentLink"
        and not _has_id_filter(sel.where, ("contentdocumentid", "linkedentityid"))
    ):
        raise malformed(
            "Implementation restriction: ContentDocumentLink requires a filter by a single Id on "
            "ContentDocumentId or LinkedEntityId using the equals operator or multiple Id's using the "
            "IN operator."
        )
    r = _Resolver(objects, obj, text, today)
    q = Query(
        text=text,
        object_name=obj.name,
        columns=[],
        is_count=sel.is_count,
        limit=sel.limit,
        include_deleted=include_deleted,
        for_bulk=for_bulk,
    )
    select: list[str] = []
    kinds: list[tuple[str, object]] = []  # per visible column: ("plain"|"bool"|"compound", extra)
    seen: set[str] = set()
    rel_prefix_ids: dict[tuple[str, ...], tuple[str, str | None]] = {}
    for path, pos in sel.fields:
        canon, fdef, found, rels = r.resolve(path, pos)
        name = ".".join(canon)
        if name.lower() in seen:
            raise malformed(_where(text, pos) + f"duplicate field selected: {name}")
        seen.add(name.lower())
        for prefix, id_expr, static in rels:
            rel_prefix_ids.setdefault(prefix, (id_expr, static))
        if for_bulk and fdef.type in COMPOUND_TYPES:
            raise SalesforceError(
                400, "FUNCTIONALITY_NOT_ENABLED", "Selecting compound data not supported in Bulk Query"
            )
        if for_bulk and fdef.type == "base64":
            raise SalesforceError(
                400, "FUNCTIONALITY_NOT_ENABLED", f"Binary field '{fdef.name}' is not supported in Bulk Query"
            )
        q.columns.append(Column(name, fdef.type, canon))
        if fdef.type == "textarea" and fdef.length > LONG_TEXT_LENGTH:
            q.long_text_columns += 1
        if fdef.type in COMPOUND_TYPES:
            if len(found) != 1:
                raise _Unsupported("polymorphic", f"compound field {name} through a polymorphic relationship")
            alias, owner, _ = found[0]
            comps = compound_components(owner, fdef)
            start = len(select)
            select.extend(field_expr(alias, c) for _, c in comps)
            kinds.append(("compound", (start, [k for k, _ in comps])))
        elif fdef.type == "base64":
            select.append(f'{found[0][0]}."Id"')
            kinds.append(("plain", len(select) - 1))
        else:
            select.append(_leaf_expr(found))
            kinds.append(("bool" if fdef.type == "boolean" else "plain", len(select) - 1))
    visible_sql = len(select)
    # hidden: record Id, relationship ids, sort keys, rowid
    select.append('t."Id"')
    q.id_index = len(q.columns)
    hidden_start = visible_sql
    for prefix, (id_expr, static) in rel_prefix_ids.items():
        select.append(id_expr)
        q.rel_ids[prefix] = (len(q.columns) + (len(select) - 1 - hidden_start), static)
    where_parts: list[str] = []
    if obj.has("IsDeleted") and not include_deleted:
        where_parts.append('t."IsDeleted" = 0')
    if obj.has("IsArchived") and obj.name in ("Task", "Event") and not include_deleted:
        where_parts.append('t."IsArchived" = 0')  # archived activities: queryAll only
    params: list = []
    if sel.where is not None:
        where_parts.append(_where_sql(r, sel.where, params, text))
    order: list[tuple[str, bool, bool]] = []
    for item in sel.order:
        canon, fdef, found, _ = r.resolve(item.path, item.pos)
        if (
            fdef.type in COMPOUND_TYPES
            or fdef.type == "base64"
            or (fdef.type in ("textarea", "multipicklist") and fdef.length > 255)
        ):
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                _where(text, item.pos) + f"field '{fdef.name}' can not be sorted in a query call",
            )
        expr = _leaf_expr(found)
        if fdef.type in STRING_TYPES:
            expr += " COLLATE NOCASE"
        nulls_last = item.nulls_last if item.nulls_last is not None else item.desc
        order.append((expr, item.desc, nulls_last))
    q.sort_index = len(q.columns) + (len(select) - hidden_start)
    for expr, _, _ in order:
        select.append(expr.replace(" COLLATE NOCASE", ""))
    q.rowid_index = len(q.columns) + (len(select) - hidden_start)
    select.append("t.rowid")
    q.select_sql = select
    q.from_sql = f'"{obj.name}" t ' + " ".join(r.joins)
    q.where_sql = " AND ".join(f"({w})" for w in where_parts) if where_parts else "1"
    q.params = params
    q.order = order
    q.transform = _make_transform(kinds, visible_sql)
    return q


def _has_id_filter(node, names: tuple[str, ...]) -> bool:
    """True if ``node`` (top level, or a term of a top-level AND) is ``= id`` / ``IN (ids)`` on ``names``."""
    if isinstance(node, Cond):
        return len(node.path) == 1 and node.path[0].lower() in names and node.op in ("=", "IN")
    if isinstance(node, BoolOp) and node.op == "AND":
        return any(_has_id_filter(a, names) for a in node.args)
    return False


def _make_transform(kinds: list[tuple[str, object]], visible_sql: int) -> Callable | None:
    """A function SQL row -> output row, or None when the SQL row already is the output row."""
    if all(k == "plain" for k, _ in kinds):
        return None
    parts = []
    env: dict[str, object] = {}
    for i, (kind, extra) in enumerate(kinds):
        if kind == "plain":
            parts.append(f"r[{extra}]")
        elif kind == "bool":
            parts.append(f"(None if r[{extra}] is None else r[{extra}] == 1)")
        else:
            start, keys = extra  # type: ignore[misc]
            env[f"k{i}"] = keys
            vals = f"r[{start}:{start + len(keys)}]"
            parts.append(f"(dict(zip(k{i}, {vals})) if any(v is not None for v in {vals}) else None)")
    src = f"lambda r: ({', '.join(parts)},) + r[{visible_sql}:]"
    return eval(src, env)  # noqa: S307 - generated from the schema, not from user input


def _unescape_like(s: str) -> str:
    return s.replace("\\%", "%").replace("\\_", "_")


def _convert(r: _Resolver, fdef: FieldDef, lit: Lit, text: str, name: str):
    """SOQL literal -> SQL parameter for a comparison with ``fdef``; errors like Salesforce's."""
    t = fdef.type
    k = lit.kind
    where = _where(text, lit.pos)
    if k == "null":
        return None
    if k == "reldate":
        raise malformed(where + "date literals are not supported in IN lists by this emulator")
    if t in ("id", "reference"):
        if k != "string":
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                where + f"value of filter criterion for field '{name}' "
                "must be of type id and should be enclosed in quotes",
            )
        s = _unescape_like(lit.value)  # type: ignore[arg-type]
        try:
            return normalize_id(s)
        except ValueError:
            raise SalesforceError(
                400, "INVALID_QUERY_FILTER_OPERATOR", where + f"invalid ID field: {s}"
            ) from None
    if t in STRING_TYPES or t in ("anyType", "json"):
        if k != "string":
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                where + f"value of filter criterion for field '{name}' "
                "must be of type string and should be enclosed in quotes",
            )
        return _unescape_like(lit.value)  # type: ignore[arg-type]
    if t == "boolean":
        if k != "bool":
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                where + f"value of filter criterion for field '{name}' "
                "must be of type boolean and should not be enclosed in quotes",
            )
        return 1 if lit.value else 0
    if t in NUMBER_TYPES:
        if k != "number":
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                where + f"value of filter criterion for field '{name}' "
                f"must be of type {'double' if t != 'int' else 'integer'} and should not be "
                "enclosed in quotes",
            )
        return lit.value
    if t == "date":
        if k != "date":
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                where + f"value of filter criterion for field '{name}' "
                "must be of type date and should not be enclosed in quotes",
            )
        return lit.value
    if t == "datetime":
        if k != "datetime":
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                where + f"value of filter criterion for field '{name}' "
                "must be of type dateTime and should not be enclosed in quotes",
            )
        return lit.value
    raise SalesforceError(400, "INVALID_FIELD", where + f"field '{name}' can not be filtered in a query call")


def _reldate_sql(
    r: _Resolver, fdef: FieldDef, lit: Lit, op: str, expr: str, params: list, text: str, name: str
) -> str:
    """A comparison with a relative date literal: a range of days by the org clock (UTC)."""
    if fdef.type not in ("date", "datetime"):
        raise SalesforceError(
            400, "INVALID_FIELD", _where(text, lit.pos) + f"value of filter criterion for field '{name}' must be of "
            f"type {fdef.type} and should not be a date literal",
        )  # fmt: skip
    if op == "LIKE":
        raise malformed(_where(text, lit.pos) + "LIKE cannot be used with a date literal")
    lit_name, n = lit.value  # type: ignore[misc]
    start, end = date_literal_range(lit_name, n, r.today)
    fmt = (lambda d: d.isoformat()) if fdef.type == "date" else (lambda d: d.isoformat() + "T00:00:00.000Z")
    s, e = fmt(start), fmt(end)
    if op == "=":
        params.extend([s, e])
        return f"{expr} >= ? AND {expr} < ?"
    if op == "!=":
        params.extend([s, e])
        return f"{expr} IS NULL OR {expr} < ? OR {expr} >= ?"
    bound = {"<": s, "<=": e, ">": e, ">=": s}[op]
    params.append(bound)
    return f"{expr} {'<' if op in ('<', '<=') else '>='} ?"


def _where_sql(r: _Resolver, node, params: list, text: str) -> str:
    if isinstance(node, BoolOp):
        if node.op == "NOT":
            return f"NOT coalesce(({_where_sql(r, node.args[0], params, text)}), 0)"
        joiner = f" {node.op} "
        return joiner.join(f"({_where_sql(r, a, params, text)})" for a in node.args)
    assert isinstance(node, Cond)
    canon, fdef, found, _ = r.resolve(node.path, node.pos)
    name = ".".join(canon)
    if (
        fdef.type in COMPOUND_TYPES
        or fdef.type == "base64"
        or (fdef.type == "textarea" and fdef.length > 255)
    ):
        raise SalesforceError(
            400,
            "INVALID_FIELD",
            _where(text, node.pos) + f"field '{fdef.name}' can not be filtered in a query call",
        )
    expr = _leaf_expr(found)
    coll = " COLLATE NOCASE" if fdef.type in STRING_TYPES else ""
    op = node.op
    if op in ("IN", "NOTIN"):
        vals = [_convert(r, fdef, lit, text, name) for lit in node.value]  # type: ignore[union-attr]
        non_null = [v for v in vals if v is not None]
        has_null = len(non_null) != len(vals)
        pieces = []
        if non_null:
            params.extend(non_null)
            marks = ", ".join("?" * len(non_null))
            pieces.append(f"{expr}{coll} {'IN' if op == 'IN' else 'NOT IN'} ({marks})")
        if op == "IN":
            if has_null:
                pieces.append(f"{expr} IS NULL")
            return " OR ".join(pieces) if pieces else "0"
        # NOT IN keeps nulls unless null is listed
        if has_null:
            pieces.append(f"{expr} IS NOT NULL")
            return " AND ".join(pieces)
        return f"{expr} IS NULL OR " + pieces[0] if pieces else "1"
    lit = node.value
    assert isinstance(lit, Lit)
    if lit.kind == "reldate":
        return _reldate_sql(r, fdef, lit, op, expr, params, text, name)
    if isinstance(lit, Lit) and lit.kind == "null":
        if op == "=":
            return f"{expr} IS NULL"
        if op == "!=":
            return f"{expr} IS NOT NULL"
        raise malformed(_where(text, lit.pos) + f"operator {op} cannot be used with null")
    if op == "LIKE":
        if fdef.type not in STRING_TYPES:
            raise SalesforceError(
                400, "INVALID_FIELD", _where(text, node.pos) + f"invalid operator on {fdef.type} field: LIKE"
            )
        if lit.kind != "string":
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                _where(text, lit.pos)
                + f"value of filter criterion for field '{name}' must be of type string and "
                "should be enclosed in quotes",
            )
        params.append(lit.value)
        return f"{expr} LIKE ? ESCAPE '\\'"
    value = _convert(r, fdef, lit, text, name)
    params.append(value)
    if op == "!=":
        return f"{expr} IS NOT ?{coll}"
    return f"{expr} {op} ?{coll}"
