"""``--where`` for browse and restore: a small filter language over backed-up records (not SOQL).

Grammar (one or more conditions; all must hold)::

    condition := FIELD OP VALUE | FIELD "is null" | FIELD "is not null"
    OP        := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~" (contains, case-insensitive) | "^" (starts with)
    VALUE     := a bare word, a 'single-' or "double-quoted" string, or null
    where     := condition (("and" | ",") condition)*

Field names are case-insensitive. Numbers compare as numbers when both sides are numeric, everything
else as text (ISO dates and datetimes therefore compare in time order). Ids compare in either
15- or 18-character form. ``Name ~ acme and AnnualRevenue > 1000000``, ``Id = 001…``, ``Email is null``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orgvault.errors import ConfigError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op><=|>=|!=|=|<|>|~|\^)
      | (?P<comma>,)
      | (?P<word>[^\s,'"=<>!~^]+)
    )""",
    re.VERBOSE,
)

_OPS = ("=", "!=", "<", "<=", ">", ">=", "~", "^")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # one of _OPS, or "null" / "notnull"
    value: Any = None

    def test(self, record: Mapping[str, Any]) -> bool:
        have = _get(record, self.field)
        if self.op == "null":
            return have is None or have == ""
        if self.op == "notnull":
            return not (have is None or have == "")
        want = self.value
        if want is None:
            isnull = have is None or have == ""
            return isnull if self.op == "=" else (not isnull if self.op == "!=" else False)
        if have is None:
            return self.op == "!="
        if self.op == "~":
            return str(want).lower() in _text(have).lower()
        if self.op == "^":
            return _text(have).lower().startswith(str(want).lower())
        a, b = _comparable(have, want)
        if self.op == "=":
            return a == b
        if self.op == "!=":
            return a != b
        try:
            if self.op == "<":
                return a < b
            if self.op == "<=":
                return a <= b
            if self.op == ">":
                return a > b
            return a >= b
        except TypeError:
            return False


def _get(record: Mapping[str, Any], field: str) -> Any:
    if field in record:
        return record[field]
    low = field.lower()
    for k, v in record.items():
        if k.lower() == low:
            return v
    return None


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def _is_id(s: str) -> bool:
    return len(s) in (15, 18) and s.isalnum() and any(c.isdigit() for c in s[:5])


def _comparable(have: Any, want: Any) -> tuple[Any, Any]:
    if isinstance(have, bool):
        return _text(have), str(want).lower()
    na, nb = _number(have), _number(want)
    if na is not None and nb is not None and not isinstance(have, str):
        return na, nb
    a, b = _text(have), str(want)
    if _is_id(a) and _is_id(b):
        return a[:15], b[:15]
    return a, b


def _unquote(s: str) -> str:
    body = s[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse_where(text: str | Iterable[str] | None) -> list[Condition]:
    """Parse one expression (or several, ANDed). Raises ``ConfigError`` saying what is wrong."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    out: list[Condition] = []
    for part in parts:
        out.extend(_parse_one(part))
    return out


def _parse_one(text: str) -> list[Condition]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ConfigError(f"--where: cannot read {text[pos:]!r}; see `orgvault browse --help`")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    conds: list[Condition] = []
    i = 0
    while i < len(tokens):
        kind, val = tokens[i]
        if kind != "word":
            raise ConfigError(f"--where: expected a field name, got {val!r}")
        field = val
        if i + 1 >= len(tokens):
            raise ConfigError(f"--where: {field!r} needs an operator and a value (e.g. {field} = value)")
        k2, v2 = tokens[i + 1]
        if k2 == "word" and v2.lower() == "is":
            neg = i + 2 < len(tokens) and tokens[i + 2][1].lower() == "not"
            j = i + 3 if neg else i + 2
            if j >= len(tokens) or tokens[j][1].lower() != "null":
                raise ConfigError(f"--where: expected '{field} is null' or '{field} is not null'")
            conds.append(Condition(field, "notnull" if neg else "null"))
            i = j + 1
        elif k2 == "op":
            if i + 2 >= len(tokens):
                raise ConfigError(f"--where: {field} {v2} needs a value")
            k3, v3 = tokens[i + 2]
            if k3 == "str":
                value: Any = _unquote(v3)
            elif k3 == "word":
                value = None if v3.lower() == "null" else v3
            else:
                raise ConfigError(f"--where: {field} {v2} needs a value, got {v3!r}")
            conds.append(Condition(field, v2, value))
            i += 3
        else:
            raise ConfigError(f"--where: unknown operator {v2!r}; use one of {' '.join(_OPS)} or 'is null'")
        if i < len(tokens):
            k, v = tokens[i]
            if k == "comma" or (k == "word" and v.lower() == "and"):
                i += 1
                if i >= len(tokens):
                    raise ConfigError("--where: dangling 'and'")
            else:
                raise ConfigError(f"--where: expected 'and' or ',' before {v!r} (only AND is supported)")
    return conds


def predicate(conditions: list[Condition]) -> Callable[[Mapping[str, Any]], bool]:
    """A record test that holds when every condition holds (no conditions: always)."""
    if not conditions:
        return lambda _r: True
    return lambda r: all(c.test(r) for c in conditions)


def project(record: Mapping[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """The record restricted to ``fields`` (case-insensitive, in the order given; Id always first)."""
    if not fields:
        return dict(record)
    out: dict[str, Any] = {}
    if "Id" in record:
        out["Id"] = record["Id"]
    for f in fields:
        for k, v in record.items():
            if k.lower() == f.lower():
                out[k] = v
                break
        else:
            out[f] = None
    return out
