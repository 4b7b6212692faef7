"""The emulated Salesforce org: records in SQLite, describe metadata, queries, writes, recycle bin.

One SQLite file (``<path>/org.sqlite``, WAL) holds a table per sObject with a column per stored field,
plus internal tables: ``_meta`` (org facts, id counters, schema changes), ``_blobs`` (base64 field
contents) and ``_deleted`` (the deletion log behind getDeleted). Reopening the same path gives the same
org. All public methods are thread-safe (one connection behind a re-entrant lock).

Storage conventions: datetimes are text ``2024-01-01T00:00:00.000Z`` (UTC, fixed width, so they sort
and compare as text), dates ``2024-01-01``, times ``10:00:00.000Z``, booleans 0/1, text columns
``COLLATE NOCASE`` (SOQL comparisons are case-insensitive), empty strings are stored as NULL.

Write semantics that follow Salesforce: every write stamps LastModifiedDate/SystemModstamp from the org
clock; formula fields are computed on read and never move SystemModstamp. Deleting a record puts it in
the recycle bin (``IsDeleted``, queryAll only) with its master-detail children, an account's contacts and
opportunities and a record's activities, notes and attachments; other lookups pointing at it are cleared
(the child's SystemModstamp moves) and restored by undelete. Recycle-bin rows are purged 15 days after
the delete; the deletion log behind getDeleted keeps them for the same window. Ids never repeat.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from .clock import Clock
from .errors import SalesforceError, invalid_type, not_found
from .ids import IdFactory, normalize_id
from .schema import (
    COMPOUND_TYPES,
    NUMBER_TYPES,
    STRING_TYPES,
    FieldDef,
    ObjectDef,
    builtin_objects,
    field_from_spec,
    with_field,
)
from .soql import Column, Query, compile_query

__all__ = ["Org", "Page", "Query", "Column", "fmt_dt", "parse_dt"]

RECYCLE_BIN_DAYS = 15
UPDATED_WINDOW_DAYS = 30
REPLICATION_ID_LIMIT = 600_000
DEFAULT_API_VERSION = "59.0"
BLOB_FIELDS = {("Note", "Body")}  # textarea fields also served by the blob endpoint
# lookups never cleared when their target is deleted (users are never deleted; merges keep the trail)
NEVER_CLEARED = {"OwnerId", "CreatedById", "LastModifiedById", "MasterRecordId", "FirstPublishLocationId"}
# lookups whose records Salesforce deletes (and undeletes) with their parent, besides master-detail
CASCADES = {
    ("Contact", "AccountId"),
    ("Opportunity", "AccountId"),
    ("Task", "WhatId"),
    ("Event", "WhatId"),
    ("Task", "WhoId"),
    ("Event", "WhoId"),
    ("Attachment", "ParentId"),
    ("Note", "ParentId"),
    ("ContentVersion", "ContentDocumentId"),
    ("Case", "AccountId"),  # deleting an account deletes its contacts, opportunities and cases
}


@dataclass(frozen=True)
class Page:
    """One page of a query. ``next_after`` is an opaque keyset token, None when there is no more."""

    rows: list[tuple]
    next_after: str | None


def fmt_dt(d: datetime) -> str:
    """Storage / Bulk CSV form of a datetime: ``2024-01-01T00:00:00.000Z``."""
    if d.tzinfo is not None:
        d = d.astimezone(UTC)
    return f"{d:%Y-%m-%dT%H:%M:%S}.{d.microsecond // 1000:03d}Z"


def json_dt(stored: str | None) -> str | None:
    """REST JSON form of a stored datetime: ``2024-01-01T00:00:00.000+0000``."""
    return None if stored is None else stored[:-1] + "+0000"


_DT_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_dt(value: str) -> datetime:
    """Parse the datetime forms Salesforce accepts (``Z``, ``+0000``, ``+00:00``, no zone = UTC)."""
    m = _DT_RE.match(value.strip())
    if not m:
        raise ValueError(value)
    d, hh, mm, ss, frac, zone = m.groups()
    base = datetime.strptime(d, "%Y-%m-%d")
    ms = int((frac or "0")[:3].ljust(3, "0"))
    base = base.replace(hour=int(hh or 0), minute=int(mm or 0), second=int(ss or 0), microsecond=ms * 1000)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        z = zone[1:].replace(":", "")
        off = timedelta(hours=int(z[:2]), minutes=int(z[2:]))
        return (base - sign * off).replace(tzinfo=UTC)
    return base.replace(tzinfo=UTC)


def _sql_type(f: FieldDef) -> str:
    if f.type in ("int", "long", "boolean"):
        return "INTEGER"
    if f.type in ("double", "currency", "percent"):
        return "REAL"
    return "TEXT COLLATE NOCASE"


_FILE_TYPES = {
    "pdf": "PDF",
    "txt": "TEXT",
    "csv": "CSV",
    "png": "PNG",
    "jpg": "JPG",
    "jpeg": "JPG",
    "docx": "WORD_X",
    "xlsx": "EXCEL_X",
    "zip": "ZIP",
    "json": "JSON",
    "bin": "UNKNOWN",
}


def _file_type(path: str | None) -> tuple[str, str]:
    ext = (path or "").rsplit(".", 1)[-1].lower() if path and "." in path else ""
    return _FILE_TYPES.get(ext, "UNKNOWN"), ext


class Org:
    """A Salesforce org held in SQLite. See the module docstring for the storage model."""

    def __init__(self, path: str | Path | None = None, *, seed: int = 1, clock: Clock | None = None):
        self._tmp = None
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="sf-emulator-")
            path = self._tmp
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self._tx_depth = 0
        self._closed = False
        db = self.path / "org.sqlite"
        self._conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._conn.create_function("sf_now", 0, lambda: fmt_dt(self.clock.now()))
        self._describe_cache: dict[str, dict] = {}
        self._global_cache: dict | None = None
        self.schema_version = 0
        fresh = not self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_meta'"
        ).fetchone()
        self.objects: dict[str, ObjectDef] = {o.name.lower(): o for o in builtin_objects()}
        if fresh:
            self._conn.execute("BEGIN")
            self._create(seed)
            self._conn.execute("COMMIT")
        else:
            self._load()
        self._by_prefix = {o.key_prefix: o for o in self.objects.values() if o.key_prefix and o.has_table}
        self._children = self._child_index()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def generate(
        cls, path: str | Path | None = None, *, scale: int = 500, seed: int = 1, clock: Clock | None = None
    ) -> Org:
        """A new org filled by the seeded generator with about ``scale`` records. If ``path`` already
        holds a generated org it is reopened as is."""
        from .generator import generate

        org = cls(path, seed=seed, clock=clock)
        if org._meta_get("generated") is None:
            generate(org, scale=scale, seed=seed)
        return org

    def _create(self, seed: int) -> None:
        c = self._conn
        c.execute("CREATE TABLE _meta (key TEXT PRIMARY KEY, value TEXT)")
        c.execute(
            "CREATE TABLE _blobs (record_id TEXT NOT NULL, field TEXT NOT NULL, data BLOB NOT NULL, "
            "PRIMARY KEY (record_id, field)) WITHOUT ROWID"
        )
        c.execute(
            "CREATE TABLE _deleted (id TEXT PRIMARY KEY, sobject TEXT NOT NULL, deleted_date TEXT NOT NULL, "
            "cascade_of TEXT)"
        )
        c.execute("CREATE INDEX _deleted_obj ON _deleted (sobject, deleted_date)")
        c.execute("CREATE INDEX _deleted_cascade ON _deleted (cascade_of)")
        self._ensure_internal_tables()
        for obj in self.objects.values():
            if obj.has_table:
                self._create_table(obj)
        self.ids = IdFactory(seed)
        now = self.clock.now()
        self.org_id = self.ids.new_id("00D")
        self._meta_set("seed", seed)
        self._meta_set("org_id", self.org_id)
        self._meta_set("created", fmt_dt(now))
        self._meta_set("added_fields", [])
        self._meta_set("describe_modified", {})
        # the API user every write is attributed to
        uid = self.ids.new_id("005")
        self.user_id = uid
        self.username = f"admin@{self.org_id.lower()}.emulator.test"
        stamp = fmt_dt(now)
        c.execute(
            'INSERT INTO "User" (Id, IsDeleted, CreatedDate, CreatedById, LastModifiedDate, LastModifiedById, '
            "SystemModstamp, Username, LastName, FirstName, Email, Alias, IsActive, UserType, TimeZoneSidKey, "
            "LocaleSidKey, LanguageLocaleKey, EmailEncodingKey, Title) "
            "VALUES (?,0,?,?,?,?,?,?,?,?,?,?,1,'Standard','America/Los_Angeles','en_US','en_US','UTF-8',?)",
            (
                uid,
                stamp,
                uid,
                stamp,
                uid,
                stamp,
                self.username,
                "User",
                "Integration",
                "integration@emulator.test",
                "integ",
                "API integration user",
            ),
        )
        self._meta_set("user_id", uid)
        self._meta_set("username", self.username)
        self._save_counters()

    def _ensure_internal_tables(self) -> None:
        # ContentDocumentLinks have no recycle bin: they are removed with their record or document;
        # their rows are kept here (keyed by the deleted record's id) so undelete can restore them
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS _removed_links (parent TEXT NOT NULL, link TEXT NOT NULL)"
        )
        self._conn.execute("CREATE INDEX IF NOT EXISTS _removed_links_parent ON _removed_links (parent)")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS _cleared (parent TEXT NOT NULL, child TEXT NOT NULL, field TEXT NOT NULL, "
            "PRIMARY KEY (parent, child, field)) WITHOUT ROWID"
        )

    def _load(self) -> None:
        self._ensure_internal_tables()
        existing = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for obj in self.objects.values():
            if obj.has_table and obj.name not in existing:  # an org created by an older emulator
                self._create_table(obj)
        self.org_id = self._meta_get("org_id")
        self.user_id = self._meta_get("user_id")
        self.username = self._meta_get("username")
        self.ids = IdFactory(int(self._meta_get("seed")), self._meta_get("counters") or {})
        for spec in self._meta_get("added_fields") or []:
            obj = self.objects[spec["sobject"].lower()]
            with_field(obj, field_from_spec(spec["name"], spec["type"], spec["props"]))
        self.schema_version = len(self._meta_get("added_fields") or [])

    def _create_table(self, obj: ObjectDef) -> None:
        cols = []
        for f in obj.stored_fields():
            if f.type == "base64":
                continue
            decl = f'"{f.name}" {_sql_type(f)}'
            if f.type == "boolean":
                decl += f" NOT NULL DEFAULT {1 if f.default else 0}"
            cols.append(decl)
        self._conn.execute(f'CREATE TABLE "{obj.name}" ({", ".join(cols)})')
        self._create_indexes(obj)

    def _create_indexes(self, obj: ObjectDef) -> None:
        n = obj.name
        c = self._conn
        c.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS "{n}__id" ON "{n}" (Id)')
        if obj.has("SystemModstamp"):
            c.execute(f'CREATE INDEX IF NOT EXISTS "{n}__sysmod" ON "{n}" (SystemModstamp)')
        for f in obj.fields:
            if f.external_id and f.unique and f.stored:
                where = " WHERE IsDeleted = 0" if obj.has("IsDeleted") else ""
                c.execute(f'CREATE UNIQUE INDEX IF NOT EXISTS "{n}__{f.name}" ON "{n}" ("{f.name}"){where}')
            elif (
                f.external_id
                and f.stored
                or f.type == "reference"
                and f.stored
                and not f.name.endswith("ById")
                and f.name != "OwnerId"
            ):
                c.execute(f'CREATE INDEX IF NOT EXISTS "{n}__{f.name}" ON "{n}" ("{f.name}")')

    def _child_index(self) -> dict[str, list[tuple[ObjectDef, FieldDef]]]:
        out: dict[str, list[tuple[ObjectDef, FieldDef]]] = {}
        for o in self.objects.values():
            if not o.has_table:
                continue
            for f in o.fields:
                if f.type == "reference" and f.stored:
                    for target in f.reference_to:
                        out.setdefault(target.lower(), []).append((o, f))
        return out

    def close(self) -> None:
        """Persist and release the database (and remove it if it lived in a temporary directory)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Org:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _meta_get(self, key: str):
        row = self._conn.execute("SELECT value FROM _meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _meta_set(self, key: str, value) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO _meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def _save_counters(self) -> None:
        self._meta_set("counters", self.ids.counters)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic unit (holds the org lock). Re-entrant: a nested block is a
        savepoint, so a failed inner operation is undone without aborting the outer transaction."""
        with self._lock:
            depth = self._tx_depth
            self._conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
            self._tx_depth += 1
            try:
                yield
            except BaseException:
                self._tx_depth -= 1
                if depth == 0:
                    self._conn.execute("ROLLBACK")
                    self.ids = IdFactory(int(self._meta_get("seed")), self._meta_get("counters") or {})
                else:
                    self._conn.execute(f"ROLLBACK TO sp{depth}")
                    self._conn.execute(f"RELEASE sp{depth}")
                raise
            else:
                self._tx_depth -= 1
                if depth == 0:
                    self._save_counters()
                    self._conn.execute("COMMIT")
                else:
                    self._conn.execute(f"RELEASE sp{depth}")

    def _obj(self, sobject: str, *, status: int = 404) -> ObjectDef:
        obj = self.objects.get(sobject.lower()) if isinstance(sobject, str) else None
        if obj is None:
            if status == 404:
                raise not_found(f"The requested resource does not exist: sObject type '{sobject}'")
            raise invalid_type(sobject)
        return obj

    def _data_obj(self, sobject: str) -> ObjectDef:
        obj = self._obj(sobject)
        if not obj.has_table:
            raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{obj.name}' is not supported.")
        return obj

    def _obj_of_id(self, record_id: str) -> tuple[ObjectDef, str]:
        rid = self._norm_id(record_id)
        obj = self._by_prefix.get(rid[:3])
        if obj is None:
            raise not_found(f"Provided id does not belong to any object: {record_id}")
        return obj, rid

    @staticmethod
    def _norm_id(record_id: object, sobject: str | None = None) -> str:
        try:
            return normalize_id(record_id)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            what = f"{sobject} ID" if sobject else "id"
            raise SalesforceError(400, "MALFORMED_ID", f"Malformed {what}: {record_id}") from None

    def _stamps(self, obj: ObjectDef, now: str) -> tuple[str, list]:
        """SQL ", X = ?, ..." and arguments that stamp a write on ``obj``'s system fields."""
        sets = ""
        args: list = []
        for name, value in (
            ("LastModifiedDate", now),
            ("SystemModstamp", now),
            ("LastModifiedById", self.user_id),
        ):
            if obj.has(name):
                sets += f', "{name}" = ?'
                args.append(value)
        return sets, args

    def _now(self) -> str:
        return fmt_dt(self.clock.now())

    def _row(self, obj: ObjectDef, rid: str) -> dict | None:
        cur = self._conn.execute(f'SELECT * FROM "{obj.name}" WHERE Id = ?', (rid,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    # ------------------------------------------------------------------ describe

    def object_names(self) -> list[str]:
        """Names of every sObject describeGlobal lists."""
        return [o.name for o in self.objects.values()]

    def _urls(self, obj: ObjectDef, ver: str) -> dict:
        base = f"/services/data/v{ver}/sobjects/{obj.name}"
        return {
            "compactLayouts": f"{base}/describe/compactLayouts",
            "rowTemplate": f"{base}/{{ID}}",
            "approvalLayouts": f"{base}/describe/approvalLayouts",
            "describe": f"{base}/describe",
            "quickActions": f"{base}/quickActions",
            "layouts": f"{base}/describe/layouts",
            "sobject": base,
        }

    def _global_entry(self, obj: ObjectDef, ver: str) -> dict:
        return {
            "activateable": False,
            "associateEntityType": None,
            "associateParentEntity": None,
            "createable": obj.createable,
            "custom": obj.custom,
            "customSetting": False,
            "deepCloneable": False,
            "deletable": obj.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": obj.name in ("Account", "Contact", "Case", "Opportunity"),
            "hasSubtypes": False,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": obj.key_prefix,
            "label": obj.label or obj.name,
            "labelPlural": (obj.label or obj.name) + "s",
            "layoutable": obj.layoutable,
            "mergeable": obj.mergeable,
            "mruEnabled": obj.layoutable,
            "name": obj.name,
            "queryable": obj.queryable,
            "replicateable": obj.replicateable,
            "retrieveable": obj.retrieveable,
            "searchable": obj.searchable,
            "triggerable": obj.has_table,
            "undeletable": obj.undeletable,
            "updateable": obj.updateable,
            "urls": self._urls(obj, ver),
        }

    def describe_global(self, *, api_version: str = DEFAULT_API_VERSION) -> dict:
        """Exact JSON body of ``GET /sobjects``."""
        with self._lock:
            return {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [
                    self._global_entry(o, api_version)
                    for o in sorted(self.objects.values(), key=lambda o: o.name.lower())
                ],
            }

    def describe(self, sobject: str, *, api_version: str = DEFAULT_API_VERSION) -> dict:
        """Exact JSON body of ``GET /sobjects/{S}/describe``; 404 NOT_FOUND for an unknown object."""
        with self._lock:
            obj = self._obj(sobject)
            key = f"{obj.name}/{api_version}"
            cached = self._describe_cache.get(key)
            if cached is not None:
                return cached
            children = []
            for child, f in self._children.get(obj.name.lower(), []):
                rel = _child_relationship_name(child, f)
                children.append(
                    {
                        "cascadeDelete": f.cascade_delete,
                        "childSObject": child.name,
                        "deprecatedAndHidden": False,
                        "field": f.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": rel,
                        "restrictedDelete": False,
                    }
                )
            body = self._global_entry(obj, api_version)
            body.update(
                {
                    "actionOverrides": [],
                    "childRelationships": children,
                    "compactLayoutable": obj.layoutable,
                    "fields": [f.describe() for f in obj.fields],
                    "listviewable": None,
                    "lookupLayoutable": None,
                    "namedLayoutInfos": [],
                    "networkScopeFieldName": None,
                    "recordTypeInfos": [],
                    "searchLayoutable": obj.searchable,
                    "supportedScopes": [{"label": "All " + (obj.label or obj.name), "name": "everything"}],
                    "sobjectDescribeOption": "FULL",
                }
            )
            body = dict(sorted(body.items()))
            self._describe_cache[key] = body
            return body

    def describe_modified_at(self, sobject: str) -> datetime:
        """When ``sobject``'s metadata last changed (for If-Modified-Since / 304)."""
        with self._lock:
            obj = self._obj(sobject)
            stamps = self._meta_get("describe_modified") or {}
            return parse_dt(stamps.get(obj.name) or self._meta_get("created")).replace(microsecond=0)

    # ------------------------------------------------------------------ queries

    def compile(self, soql: str, *, include_deleted: bool = False, for_bulk: bool = False) -> Query:
        """Parse and check ``soql`` once; see :class:`~salesforce_emulator.soql.Query`. Raises
        SalesforceError 400 MALFORMED_QUERY / INVALID_FIELD / INVALID_TYPE (and, for Bulk,
        FUNCTIONALITY_NOT_ENABLED / INVALIDENTITY)."""
        with self._lock:
            q = compile_query(
                self.objects,
                soql,
                include_deleted=include_deleted,
                for_bulk=for_bulk,
                today=self.clock.now().date(),
            )
            q.schema_version = self.schema_version
            self._expire_recycle_bin(self.objects[q.object_name.lower()])
            return q

    def record_count(self, object_name: str) -> int:
        """Live (not deleted) records of an object, whatever SOQL would require of a query on it
        (what ``/limits/recordCount`` reports). ``KeyError`` for an unknown object."""
        obj = self.objects[object_name.lower()]
        if not obj.has_table:
            return 0
        with self._lock:
            self._expire_recycle_bin(obj)
            where = " WHERE IsDeleted = 0" if obj.has("IsDeleted") else ""
            return int(self._conn.execute(f'SELECT count(*) FROM "{obj.name}"{where}').fetchone()[0])

    def count(self, q: Query) -> int:
        """Number of rows ``q`` returns in total (LIMIT applied)."""
        with self._lock:
            sql = f"SELECT 1 FROM {q.from_sql} WHERE {q.where_sql}"
            if q.limit is not None:
                sql += f" LIMIT {int(q.limit)}"
            return self._conn.execute(f"SELECT count(*) FROM ({sql})", q.params).fetchone()[0]

    def fetch(self, q: Query, after: str | None, limit: int) -> Page:
        """Up to ``limit`` rows following the keyset token ``after`` (None: from the start). Tokens are
        stateless: the same token always gives the same page of the same data. A token that does not
        belong to ``q`` raises 400 INVALID_QUERY_LOCATOR."""
        served = 0
        key: list = []
        if after is not None:
            try:
                raw = json.loads(base64.urlsafe_b64decode(after.encode() + b"=" * (-len(after) % 4)))
                tag, served, key = raw[0], int(raw[1]), list(raw[2:])
                if tag != _query_tag(q) or len(key) != len(q.order) + 1 or not isinstance(key[-1], int):
                    raise ValueError
            except (ValueError, TypeError, IndexError, binascii.Error, json.JSONDecodeError):
                raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator") from None
        if q.limit is not None:
            limit = min(limit, q.limit - served)
        if limit <= 0:
            return Page([], None)
        params = list(q.params)
        where = q.where_sql
        if after is not None:
            cond, extra = _keyset_condition(q.order, key)
            where = f"({where}) AND ({cond})"
            params.extend(extra)
        order = ", ".join(
            f"{e} {'DESC' if d else 'ASC'} NULLS {'LAST' if nl else 'FIRST'}" for e, d, nl in q.order
        )
        order = (order + ", " if order else "") + "t.rowid ASC"
        sql = f"SELECT {', '.join(q.select_sql)} FROM {q.from_sql} WHERE {where} ORDER BY {order} LIMIT ?"
        params.append(limit + 1)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        more = len(rows) > limit
        if more:
            rows = rows[:limit]
        if q.transform is not None:
            rows = list(map(q.transform, rows))
        if not more or (q.limit is not None and served + len(rows) >= q.limit):
            return Page(rows, None)
        last = rows[-1]
        token = [
            _query_tag(q),
            served + len(rows),
            *last[q.sort_index : q.sort_index + len(q.order)],
            last[q.rowid_index],
        ]
        nxt = base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")
        return Page(rows, nxt)

    def render_json(self, q: Query, rows, *, api_version: str = DEFAULT_API_VERSION) -> list[dict]:
        """Rows as REST records: ``{"attributes": {"type", "url"}, field: value, ...}`` with nested parent
        relationships (None when the parent is absent), compound fields as objects, datetimes as
        ``...000+0000`` and base64 fields as the URL of the blob."""
        plan = q.cache.get("json")
        if plan is None:
            plan = q.cache["json"] = _json_plan(q, self._by_prefix)
        base = f"/services/data/v{api_version}/sobjects/"
        out = []
        for row in rows:
            out.append(_render_node(plan, row, q.object_name, row[q.id_index], base))
        return out

    def render_csv(self, q: Query, rows, *, header: bool, line_ending: str = "LF") -> bytes:
        """Rows as Bulk API 2.0 CSV: every value quoted, quotes doubled, null = empty cell, booleans
        true/false, datetimes ``2024-01-01T00:00:00.000Z``, header (if asked) in SELECT order."""
        nl = "\r\n" if line_ending == "CRLF" else "\n"
        fn = q.cache.get("csv")
        if fn is None:
            fn = q.cache["csv"] = _csv_row_fn(q)
        body = nl.join(map(fn, rows))
        parts = []
        if header:
            parts.append(",".join(f'"{c.name}"' for c in q.columns))
        if rows:
            parts.append(body)
        text = nl.join(parts)
        return (text + nl).encode() if text else b""

    # ------------------------------------------------------------------ records

    def retrieve(
        self,
        sobject: str,
        record_id: str,
        fields: list[str] | None = None,
        *,
        api_version: str = DEFAULT_API_VERSION,
    ) -> dict:
        """One record in REST shape (every field when ``fields`` is None). 404 NOT_FOUND if absent,
        404 ENTITY_IS_DELETED if in the recycle bin."""
        with self._lock:
            obj = self._data_obj(sobject)
            rid = self._norm_id(record_id, obj.name)
            if fields:
                names = []
                for f in fields:
                    f = f.strip()
                    if f and f.lower() not in {n.lower() for n in names}:
                        names.append(f)
                if not any(n.lower() == "id" for n in names):
                    names.insert(0, "Id")
            else:
                names = [f.name for f in obj.fields]
            q = compile_query(
                self.objects,
                f"SELECT {', '.join(names)} FROM {obj.name} WHERE Id = '{rid}'",
                include_deleted=True,
                restricted=False,
            )
            page = self.fetch(q, None, 1)
            if not page.rows:
                raise not_found()
            if obj.has("IsDeleted"):
                deleted = self._conn.execute(
                    f'SELECT IsDeleted FROM "{obj.name}" WHERE Id = ?', (rid,)
                ).fetchone()
                if deleted and deleted[0]:
                    raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
            return self.render_json(q, page.rows, api_version=api_version)[0]

    def _coerce(self, obj: ObjectDef, f: FieldDef, value):
        """Input value (JSON or CSV text) -> storage value; SalesforceError on a bad value."""
        if value is None or (isinstance(value, str) and value == "" and f.type != "boolean"):
            return None
        t = f.type
        bad = SalesforceError(
            400,
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{f.name}: value not of required type: {_short(value)}",
            [f.name],
        )
        try:
            if t in ("id", "reference"):
                rid = self._norm_id(value)
                if t == "reference":
                    target = self._by_prefix.get(rid[:3])
                    if target is None or target.name not in f.reference_to:
                        raise SalesforceError(
                            400,
                            "FIELD_INTEGRITY_EXCEPTION",
                            f"{f.name}: id value of incorrect type: {value}",
                            [f.name],
                        )
                    if not self._conn.execute(
                        f'SELECT 1 FROM "{target.name}" WHERE Id = ?', (rid,)
                    ).fetchone():
                        raise SalesforceError(
                            400,
                            "INVALID_CROSS_REFERENCE_KEY",
                            f"invalid cross reference id: {value}",
                            [f.name],
                        )
                return rid
            if t in STRING_TYPES or t in ("anyType", "json"):
                if isinstance(value, bool | dict | list):
                    raise bad
                s = str(value)
                if f.length and len(s) > f.length:
                    raise SalesforceError(
                        400,
                        "STRING_TOO_LONG",
                        f"{f.label or f.name}: data value too large: {_short(s)} (max length={f.length})",
                        [f.name],
                    )
                if t == "email" and "@" not in s:
                    raise SalesforceError(
                        400,
                        "INVALID_EMAIL_ADDRESS",
                        f"{f.name}: invalid email address: {_short(s)}",
                        [f.name],
                    )
                return s
            if t == "boolean":
                if isinstance(value, bool):
                    return int(value)
                if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0", ""):
                    return int(value.strip().lower() in ("true", "1"))
                raise bad
            if t in ("int", "long"):
                if isinstance(value, bool):
                    raise bad
                if isinstance(value, float) and value.is_integer():
                    return int(value)
                if isinstance(value, int):
                    return value
                return int(str(value).strip())
            if t in NUMBER_TYPES:
                if isinstance(value, bool):
                    raise bad
                v = float(value)
                return round(v, f.scale) if f.scale else v
            if t == "date":
                if isinstance(value, datetime):
                    value = value.date()
                if isinstance(value, date):
                    return value.isoformat()
                s = str(value).strip()
                return datetime.strptime(s[:10], "%Y-%m-%d").date().isoformat()
            if t == "datetime":
                if isinstance(value, datetime):
                    return fmt_dt(value if value.tzinfo else value.replace(tzinfo=UTC))
                return fmt_dt(parse_dt(str(value)))
            if t == "time":
                if isinstance(value, time):
                    return f"{value:%H:%M:%S}.{value.microsecond // 1000:03d}Z"
                m = re.fullmatch(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?Z?", str(value).strip())
                if not m:
                    raise bad
                return f"{m.group(1)}:{m.group(2)}:{m.group(3) or '00'}.{(m.group(4) or '0').ljust(3, '0')}Z"
            if t == "base64":
                if isinstance(value, bytes | bytearray):
                    return bytes(value)
                return base64.b64decode(str(value), validate=True)
        except SalesforceError:
            raise
        except (ValueError, TypeError, binascii.Error):
            raise bad from None
        raise bad

    def _prepare(self, obj: ObjectDef, values: dict, *, creating: bool) -> tuple[dict, dict]:
        """Validate ``values`` -> (column values, blob values)."""
        cols: dict = {}
        blobs: dict = {}
        bad_access = []
        for key, value in values.items():
            if key == "attributes":
                continue
            f = obj.field(key)
            if f is None:
                resolved = self._foreign_key(obj, key, value)
                if resolved is not None:
                    key, value = resolved
                    f = obj.field(key)
            if f is None:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key]
                )
            if f.name == "Id" and not creating:
                continue
            if not (f.createable if creating else f.updateable):
                bad_access.append(f.name)
                continue
            v = self._coerce(obj, f, value)
            if f.type == "base64":
                if v is None and not f.nillable:
                    raise SalesforceError(
                        400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", [f.name]
                    )
                blobs[f.name] = v
            else:
                cols[f.name] = v
        if bad_access:
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(bad_access)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                bad_access,
            )
        return cols, blobs

    def _foreign_key(self, obj: ObjectDef, key: str, value) -> tuple[str, str | None] | None:
        """A parent given by external id -- ``{"Account": {"External_Id__c": "A1"}}`` (REST) or
        ``"Account.External_Id__c": "A1"`` (Bulk CSV header) -> ("AccountId", id). None if ``key`` is
        no relationship. INVALID_FIELD when the parent does not exist or the field is no external id."""
        type_name = None
        if isinstance(value, dict) and "." not in key:
            attrs = value.get("attributes")
            type_name = attrs.get("type") if isinstance(attrs, dict) else None
            rel_name, inner = key, {k: v for k, v in value.items() if k != "attributes"}
            if len(inner) != 1:
                return None
            ext_name, ext_value = next(iter(inner.items()))
        elif "." in key and not isinstance(value, dict):
            rel_name, ext_name = key.split(".", 1)
            ext_value = value
        else:
            return None
        ref = obj.relationship(rel_name)
        if ref is None:
            return None
        if ext_value is None or ext_value == "":
            return ref.name, None
        targets = [self.objects[t.lower()] for t in ref.reference_to if t.lower() in self.objects]
        if type_name is not None:
            targets = [t for t in targets if t.name.lower() == str(type_name).lower()]
            if not targets:
                raise SalesforceError(
                    400, "INVALID_FIELD", f"{type_name} is not a valid type for relationship {ref.relationship_name}",
                    [key],
                )  # fmt: skip
        if len(targets) != 1:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f'Polymorphic relationship {rel_name} needs a type: {{"attributes": {{"type": ...}}}}',
                [key],
            )
        target = targets[0]
        ext = target.field(ext_name)
        if ext is None or not (ext.external_id or ext.name == "Id"):
            raise SalesforceError(
                400, "INVALID_FIELD", f"Field {ext_name} is not an external id on entity {target.name}", [key]
            )
        rows = self._conn.execute(
            f'SELECT Id FROM "{target.name}" WHERE "{ext.name}" = ? AND IsDeleted = 0 LIMIT 2',
            (str(ext_value),),
        ).fetchall()
        if len(rows) != 1:
            what = "not found" if not rows else "matches more than one record"
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"Foreign key external ID: {_short(ext_value)} {what} for field {ext.name} in entity {target.name}",
                [key],
            )
        return ref.name, rows[0][0]

    def create(self, sobject: str, values: dict) -> str:
        """Insert a record; returns its new 18-character id. Validation errors as Salesforce reports
        them (INVALID_FIELD, INVALID_FIELD_FOR_INSERT_UPDATE, REQUIRED_FIELD_MISSING, MALFORMED_ID,
        STRING_TOO_LONG, DUPLICATE_VALUE, ...); 404 NOT_FOUND for an unknown object."""
        with self.transaction():
            obj = self._data_obj(sobject)
            if not obj.createable:
                raise SalesforceError(
                    400, "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support insert"
                )
            cols, blobs = self._prepare(obj, values, creating=True)
            if obj.name == "ContentVersion" and not cols.get("Title") and cols.get("PathOnClient"):
                # Salesforce names the file after PathOnClient when no Title is given
                cols["Title"] = (
                    os.path.splitext(os.path.basename(cols["PathOnClient"]))[0] or cols["PathOnClient"]
                )
            return self._insert(obj, cols, blobs)

    def _insert(self, obj: ObjectDef, cols: dict, blobs: dict) -> str:
        now = self._now()
        missing = []
        for f in obj.fields:
            if not f.stored:
                continue
            if f.type == "base64":
                if f.required and blobs.get(f.name) is None:
                    missing.append(f.name)
                continue
            if cols.get(f.name) is None:
                if f.type == "boolean":
                    cols[f.name] = 1 if f.default else 0
                elif f.defaulted_on_create and f.createable and f.picklist:
                    cols[f.name] = f.picklist[0]
                elif f.required:
                    missing.append(f.name)
        if missing:
            raise SalesforceError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        rid = self.ids.new_id(obj.key_prefix)  # type: ignore[arg-type]
        cols["Id"] = rid
        for name, val in (
            ("CreatedDate", now),
            ("LastModifiedDate", now),
            ("SystemModstamp", now),
            ("CreatedById", self.user_id),
            ("LastModifiedById", self.user_id),
        ):
            if obj.has(name):
                cols[name] = val
        if obj.has("OwnerId") and cols.get("OwnerId") is None:
            cols["OwnerId"] = self.user_id
        if obj.has("IsDeleted"):
            cols["IsDeleted"] = 0
        self._special_insert(obj, cols, blobs, now)
        self._write_row(obj, cols)
        for name, data in blobs.items():
            if data is not None:
                self._conn.execute(
                    "INSERT OR REPLACE INTO _blobs (record_id, field, data) VALUES (?, ?, ?)",
                    (rid, name, data),
                )
        return rid

    def _write_row(self, obj: ObjectDef, cols: dict) -> None:
        names = list(cols)
        sql = (
            f'INSERT INTO "{obj.name}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) '
            f"VALUES ({', '.join('?' * len(names))})"
        )
        try:
            self._conn.execute(sql, [cols[n] for n in names])
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(obj, exc, cols) from None

    def _duplicate(self, obj: ObjectDef, exc: sqlite3.IntegrityError, cols: dict) -> SalesforceError:
        msg = str(exc)
        for f in obj.fields:
            if f.unique and f.stored and f"{obj.name}.{f.name}" in msg:
                other = self._conn.execute(
                    f'SELECT Id FROM "{obj.name}" WHERE "{f.name}" = ? AND Id != ?',
                    (cols.get(f.name), cols.get("Id", "")),
                ).fetchone()
                return SalesforceError(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {f.name} duplicates value "
                    f"on record with id: {other[0] if other else ''}",
                    [f.name],
                )
        return SalesforceError(400, "DUPLICATE_VALUE", "duplicate value found")

    def _special_insert(self, obj: ObjectDef, cols: dict, blobs: dict, now: str) -> None:
        name = obj.name
        if name == "Case" and cols.get("CaseNumber") is None:
            n = self.ids.counters.get("#case", 1000) + 1
            self.ids.counters["#case"] = n
            cols["CaseNumber"] = f"{n:08d}"
        if name in ("Attachment", "Document"):
            data = blobs.get("Body")
            cols["BodyLength"] = len(data) if data is not None else None
            if name == "Document" and cols.get("AuthorId") is None:
                cols["AuthorId"] = self.user_id
        if name == "ContentVersion":
            data = blobs.get("VersionData") or b""
            ftype, ext = _file_type(cols.get("PathOnClient"))
            cols.update(
                ContentSize=len(data),
                FileType=ftype,
                FileExtension=ext,
                Checksum=hashlib.md5(data).hexdigest(),
                IsLatest=1,
            )  # noqa: S324 - Salesforce's choice
            doc_id = cols.get("ContentDocumentId")
            if doc_id is None:
                doc_id = self.ids.new_id("069")
                cols["ContentDocumentId"] = doc_id
                cols["VersionNumber"] = "1"
                self._write_row(
                    self.objects["contentdocument"],
                    {
                        "Id": doc_id,
                        "OwnerId": cols.get("OwnerId") or self.user_id,
                        "IsDeleted": 0,
                        "CreatedDate": now,
                        "CreatedById": self.user_id,
                        "LastModifiedDate": now,
                        "LastModifiedById": self.user_id,
                        "SystemModstamp": now,
                        "Title": cols.get("Title"),
                        "FileType": ftype,
                        "FileExtension": ext,
                        "ContentSize": len(data),
                        "LatestPublishedVersionId": cols["Id"],
                        "IsArchived": 0,
                        "PublishStatus": "P",
                    },
                )
                loc = cols.get("FirstPublishLocationId")
                if loc:
                    self._write_row(
                        self.objects["contentdocumentlink"],
                        {
                            "Id": self.ids.new_id("06A"),
                            "LinkedEntityId": loc,
                            "ContentDocumentId": doc_id,
                            "ShareType": "V",
                            "Visibility": "AllUsers",
                            "IsDeleted": 0,
                            "SystemModstamp": now,
                        },
                    )
            else:
                prev = self._conn.execute(
                    'SELECT count(*) FROM "ContentVersion" WHERE ContentDocumentId = ?', (doc_id,)
                ).fetchone()[0]
                cols["VersionNumber"] = str(prev + 1)
                self._conn.execute(
                    'UPDATE "ContentVersion" SET IsLatest = 0, SystemModstamp = ? WHERE ContentDocumentId = ? '
                    "AND IsLatest = 1",
                    (now, doc_id),
                )
                self._conn.execute(
                    'UPDATE "ContentDocument" SET LatestPublishedVersionId = ?, ContentSize = ?, Title = ?, '
                    "FileType = ?, FileExtension = ?, LastModifiedDate = ?, SystemModstamp = ? WHERE Id = ?",
                    (cols["Id"], len(data), cols.get("Title"), ftype, ext, now, now, doc_id),
                )

    def _active_row(self, obj: ObjectDef, rid: str) -> dict:
        row = self._row(obj, rid)
        if row is None:
            raise not_found()
        if row.get("IsDeleted"):
            raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        return row

    def update(self, sobject: str, record_id: str, values: dict) -> None:
        """Change fields of an existing record; stamps LastModifiedDate/SystemModstamp. 404 NOT_FOUND
        for an unknown id, 404 ENTITY_IS_DELETED for a record in the recycle bin."""
        with self.transaction():
            obj = self._data_obj(sobject)
            rid = self._norm_id(record_id, obj.name)
            if rid[:3] != obj.key_prefix:
                raise not_found()
            if not obj.updateable:
                raise SalesforceError(
                    400, "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support update"
                )
            body_id = values.get("Id") or values.get("id")
            if body_id is not None and self._norm_id(body_id) != rid:
                raise SalesforceError(
                    400,
                    "INVALID_ID_FIELD",
                    "The Id field should not be specified in the sobject data.",
                    ["Id"],
                )
            cols, blobs = self._prepare(obj, values, creating=False)
            self._active_row(obj, rid)
            self._apply_update(obj, rid, cols, blobs)

    def _apply_update(self, obj: ObjectDef, rid: str, cols: dict, blobs: dict | None = None) -> None:
        missing = [n for n, v in cols.items() if v is None and obj.field(n).required]  # type: ignore[union-attr]
        if missing:
            raise SalesforceError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        now = self._now()
        cols = dict(cols)
        for name in ("LastModifiedDate", "SystemModstamp"):
            if obj.has(name):
                cols[name] = now
        if obj.has("LastModifiedById"):
            cols["LastModifiedById"] = self.user_id
        sets = ", ".join(f'"{n}" = ?' for n in cols)
        try:
            self._conn.execute(f'UPDATE "{obj.name}" SET {sets} WHERE Id = ?', [*cols.values(), rid])
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(obj, exc, {**cols, "Id": rid}) from None
        for name, data in (blobs or {}).items():
            self._conn.execute("DELETE FROM _blobs WHERE record_id = ? AND field = ?", (rid, name))
            if data is not None:
                self._conn.execute(
                    "INSERT INTO _blobs (record_id, field, data) VALUES (?, ?, ?)", (rid, name, data)
                )
                if obj.name in ("Attachment", "Document"):
                    self._conn.execute(
                        f'UPDATE "{obj.name}" SET BodyLength = ? WHERE Id = ?', (len(data), rid)
                    )

    def upsert(self, sobject: str, ext_field: str, ext_value: str, values: dict) -> tuple[str, bool]:
        """Insert or update by external id -> (id, created). 404 NOT_FOUND for a field that is not an
        external id; 300 MULTIPLE_CHOICES when several records match."""
        with self.transaction():
            obj = self._data_obj(sobject)
            f = obj.field(ext_field)
            if f is None or not (f.external_id or f.name == "Id"):
                raise not_found(
                    f"Provided external ID field does not exist or is not accessible: {ext_field}"
                )
            if f.name == "Id":
                rid = self._norm_id(ext_value, obj.name)
                matches = (
                    [rid]
                    if self._conn.execute(
                        f'SELECT 1 FROM "{obj.name}" WHERE Id = ? AND IsDeleted = 0', (rid,)
                    ).fetchone()
                    else []
                )
                if not matches:
                    raise not_found()
            else:
                matches = [
                    r[0]
                    for r in self._conn.execute(
                        f'SELECT Id FROM "{obj.name}" WHERE "{f.name}" = ? AND IsDeleted = 0 LIMIT 200',
                        (ext_value,),
                    )
                ]
            body = {k: v for k, v in values.items() if k.lower() != f.name.lower() and k != "attributes"}
            if len(matches) > 1:
                raise SalesforceError(
                    300,
                    "MULTIPLE_CHOICES",
                    f"more than one record found for external id field {f.name}: {', '.join(matches)}",
                    matches,  # the matching ids (Salesforce answers with their URLs)
                )
            if matches:
                self.update(obj.name, matches[0], body)
                return matches[0], False
            return self.create(obj.name, {**body, f.name: ext_value}), True

    def delete(self, sobject: str, record_id: str) -> None:
        """Soft delete into the recycle bin (IsDeleted = true, visible to queryAll for 15 days).
        Master-detail children go with it, and so do an account's contacts, opportunities and cases and a
        record's activities, notes and attachments (see CASCADES); undelete brings them back. Its
        ContentDocumentLinks are removed (links have no recycle bin) and restored, with their ids, by
        the undelete of the record (or of what was deleted with it) when the link's other end is live.
        404 NOT_FOUND if absent, ENTITY_IS_DELETED if deleted."""
        with self.transaction():
            obj = self._data_obj(sobject)
            rid = self._norm_id(record_id, obj.name)
            if rid[:3] != obj.key_prefix:
                raise not_found()
            if not obj.deletable:
                raise SalesforceError(
                    400, "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support delete"
                )
            self._active_row(obj, rid)
            self._soft_delete(obj, rid, None)

    def _soft_delete(self, obj: ObjectDef, rid: str, cascade_of: str | None) -> None:
        now = self._now()
        sets, args = self._stamps(obj, now)
        self._conn.execute(f'UPDATE "{obj.name}" SET IsDeleted = 1{sets} WHERE Id = ?', [*args, rid])
        self._conn.execute(
            "INSERT OR REPLACE INTO _deleted (id, sobject, deleted_date, cascade_of) VALUES (?,?,?,?)",
            (rid, obj.name, now, cascade_of),
        )
        for child, f in self._children.get(obj.name.lower(), []):
            if not (
                f.cascade_delete or (child.name, f.name) in CASCADES or child.name == "ContentDocumentLink"
            ):
                if f.name not in NEVER_CLEARED and child.has("SystemModstamp"):
                    self._clear_lookups(child, f, rid, now, keep=cascade_of)
                continue
            if child.name == "ContentDocumentLink":
                self._remove_links(f.name, rid)
                continue
            for (cid,) in self._conn.execute(
                f'SELECT Id FROM "{child.name}" WHERE "{f.name}" = ? AND IsDeleted = 0', (rid,)
            ).fetchall():
                self._soft_delete(child, cid, cascade_of or rid)

    def _remove_links(self, field: str, parent: str) -> None:
        """Delete the ContentDocumentLinks whose ``field`` points at ``parent``, remembering them."""
        cur = self._conn.execute(f'SELECT * FROM "ContentDocumentLink" WHERE "{field}" = ?', (parent,))
        names = [d[0] for d in cur.description]
        rows = [json.dumps(dict(zip(names, row, strict=True))) for row in cur.fetchall()]
        if not rows:
            return
        self._conn.executemany(
            "INSERT INTO _removed_links (parent, link) VALUES (?, ?)", [(parent, r) for r in rows]
        )
        self._conn.execute(f'DELETE FROM "ContentDocumentLink" WHERE "{field}" = ?', (parent,))

    def _restore_links(self, parent: str) -> None:
        """Re-insert the links removed with ``parent`` (same ids) whose other end is live again."""
        saved = self._conn.execute("SELECT link FROM _removed_links WHERE parent = ?", (parent,)).fetchall()
        self._conn.execute("DELETE FROM _removed_links WHERE parent = ?", (parent,))
        for (text,) in saved:
            row = json.loads(text)
            other = [e for e in (row.get("LinkedEntityId"), row.get("ContentDocumentId")) if e != parent]
            dead = [e for e in other if self._is_live(e) is not True]
            if dead:  # the other end is in the recycle bin: its own undelete restores the link
                if all(self._is_live(e) is False for e in dead):
                    self._conn.execute(
                        "INSERT INTO _removed_links (parent, link) VALUES (?, ?)", (dead[0], text)
                    )
                continue
            cols = ", ".join(f'"{k}"' for k in row)
            self._conn.execute(
                f'INSERT OR IGNORE INTO "ContentDocumentLink" ({cols}) VALUES ({", ".join("?" * len(row))})',
                list(row.values()),
            )

    def _is_live(self, record_id: str | None) -> bool | None:
        """True if the record exists and is not deleted, False if it is in the recycle bin, None if gone."""
        obj = self._by_prefix.get((record_id or "")[:3])
        if obj is None or not obj.has_table:
            return None
        deleted = "IsDeleted" if obj.has("IsDeleted") else "0"
        row = self._conn.execute(f'SELECT {deleted} FROM "{obj.name}" WHERE Id = ?', (record_id,)).fetchone()
        return None if row is None else not row[0]

    def _clear_lookups(
        self, child: ObjectDef, f: FieldDef, parent: str, now: str, *, keep: str | None = None
    ) -> None:
        """Salesforce clears a lookup when its target is deleted (and restores it on undelete); the
        child's SystemModstamp moves, its LastModifiedDate does not. ``keep``: the record whose delete
        cascaded to ``parent`` keeps its lookup (a deleted ContentDocument still names its
        LatestPublishedVersionId, deleted with it)."""
        ids = [
            r[0]
            for r in self._conn.execute(
                f'SELECT Id FROM "{child.name}" WHERE "{f.name}" = ? AND Id IS NOT ?', (parent, keep)
            ).fetchall()
        ]
        if not ids:
            return
        self._conn.executemany(
            "INSERT OR REPLACE INTO _cleared (parent, child, field) VALUES (?, ?, ?)",
            [(parent, cid, f.name) for cid in ids],
        )
        self._conn.execute(
            f'UPDATE "{child.name}" SET "{f.name}" = NULL, SystemModstamp = ? WHERE "{f.name}" = ? AND Id IS NOT ?',
            (now, parent, keep),
        )

    def _restore_lookups(self, parent: str, now: str) -> None:
        rows = self._conn.execute("SELECT child, field FROM _cleared WHERE parent = ?", (parent,)).fetchall()
        for cid, fname in rows:
            cobj = self._by_prefix.get(cid[:3])
            if cobj is not None and cobj.has(fname):
                self._conn.execute(
                    f'UPDATE "{cobj.name}" SET "{fname}" = ?, SystemModstamp = ? WHERE Id = ? AND "{fname}" IS NULL',
                    (parent, now, cid),
                )
        self._conn.execute("DELETE FROM _cleared WHERE parent = ?", (parent,))

    def undelete(self, record_id: str) -> None:
        """Restore a record (and what was deleted with it) from the recycle bin, keeping its id."""
        with self.transaction():
            obj, rid = self._obj_of_id(record_id)
            self._expire_recycle_bin(obj)
            row = self._row(obj, rid)
            if row is None:
                raise not_found()
            if not row.get("IsDeleted"):
                raise SalesforceError(400, "UNDELETE_FAILED", "Entity is not in the recycle bin")
            if not obj.undeletable:
                raise SalesforceError(
                    400, "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support undelete"
                )
            group = [rid] + [
                r[0] for r in self._conn.execute("SELECT id FROM _deleted WHERE cascade_of = ?", (rid,))
            ]
            now = self._now()
            for gid in group:
                self._restore_lookups(gid, now)
                gobj = self._by_prefix[gid[:3]]
                sets, args = self._stamps(gobj, now)
                self._conn.execute(f'UPDATE "{gobj.name}" SET IsDeleted = 0{sets} WHERE Id = ?', [*args, gid])
                self._conn.execute("DELETE FROM _deleted WHERE id = ?", (gid,))
            for gid in group:  # once the whole group is live again, so links between its members return
                self._restore_links(gid)

    def purge(self, record_id: str) -> None:
        """Remove a record for good (emptied recycle bin / hard delete). It stays in getDeleted's log."""
        with self.transaction():
            obj, rid = self._obj_of_id(record_id)
            row = self._row(obj, rid)
            if row is None:
                raise not_found()
            if not row.get("IsDeleted", 0):
                self._soft_delete(obj, rid, None)
            group = [rid] + [
                r[0] for r in self._conn.execute("SELECT id FROM _deleted WHERE cascade_of = ?", (rid,))
            ]
            for gid in group:
                gobj = self._by_prefix[gid[:3]]
                self._conn.execute(f'DELETE FROM "{gobj.name}" WHERE Id = ?', (gid,))
                self._conn.execute("DELETE FROM _blobs WHERE record_id = ?", (gid,))
                self._conn.execute("UPDATE _deleted SET cascade_of = NULL WHERE id = ?", (gid,))
                self._conn.execute("DELETE FROM _cleared WHERE parent = ?", (gid,))
                self._conn.execute("DELETE FROM _removed_links WHERE parent = ?", (gid,))

    def _expire_recycle_bin(self, obj: ObjectDef) -> None:
        """Physically remove records deleted more than 15 days ago (by the clock)."""
        if not obj.has_table or not obj.has("IsDeleted"):
            return
        cutoff = fmt_dt(self.clock.now() - timedelta(days=RECYCLE_BIN_DAYS))
        expired = self._conn.execute(
            "SELECT id FROM _deleted WHERE sobject = ? AND deleted_date < ?", (obj.name, cutoff)
        ).fetchall()
        if not expired:
            return
        with self.transaction():
            for (rid,) in expired:
                self._conn.execute(f'DELETE FROM "{obj.name}" WHERE Id = ? AND IsDeleted = 1', (rid,))
                self._conn.execute("DELETE FROM _blobs WHERE record_id = ?", (rid,))
                self._conn.execute("DELETE FROM _cleared WHERE parent = ?", (rid,))
                self._conn.execute("DELETE FROM _removed_links WHERE parent = ?", (rid,))
            last = self._conn.execute(
                "SELECT max(deleted_date) FROM _deleted WHERE sobject = ? AND deleted_date < ?",
                (obj.name, cutoff),
            ).fetchone()[0]
            self._conn.execute(
                "DELETE FROM _deleted WHERE sobject = ? AND deleted_date < ?", (obj.name, cutoff)
            )
            stamps = self._meta_get("earliest_available") or {}
            stamps[obj.name] = max(stamps.get(obj.name, ""), last)
            self._meta_set("earliest_available", stamps)

    def merge(self, sobject: str, master_id: str, victim_ids: list[str]) -> None:
        """Merge up to two records into ``master_id``: children are re-parented to the master (their
        SystemModstamp moves), victims get MasterRecordId = master and go to the recycle bin."""
        with self.transaction():
            obj = self._data_obj(sobject)
            if not obj.mergeable:
                raise SalesforceError(
                    400, "INVALID_TYPE_FOR_OPERATION", f"entity type {obj.name} does not support merge"
                )
            if not 1 <= len(victim_ids) <= 2:
                raise SalesforceError(
                    400,
                    "INVALID_OPERATION",
                    "A merge request must have one or two records to merge into the master record",
                )
            master = self._norm_id(master_id, obj.name)
            victims = [self._norm_id(v, obj.name) for v in victim_ids]
            if master in victims or len(set(victims)) != len(victims):
                raise SalesforceError(400, "INVALID_OPERATION", "duplicate ids in merge request")
            for rid in [master, *victims]:
                if rid[:3] != obj.key_prefix:
                    raise SalesforceError(400, "INVALID_ID_FIELD", f"id {rid} is not a {obj.name}")
                self._active_row(obj, rid)
            now = self._now()
            for child, f in self._children.get(obj.name.lower(), []):
                marks = ", ".join("?" * len(victims))
                sets, args = self._stamps(child, now)
                self._conn.execute(
                    f'UPDATE "{child.name}" SET "{f.name}" = ?{sets} WHERE "{f.name}" IN ({marks})',
                    [master, *args, *victims],
                )
            for v in victims:
                self._conn.execute(f'UPDATE "{obj.name}" SET MasterRecordId = ? WHERE Id = ?', (master, v))
                self._soft_delete(obj, v, None)
            self._apply_update(obj, master, {})

    def _replication_window(self, obj: ObjectDef, start: datetime, end: datetime) -> tuple[str, str]:
        if not obj.replicateable or not obj.has_table or not obj.has("SystemModstamp"):
            raise SalesforceError(400, "CANNOT_REPLICATE", f"The object {obj.name} can't be replicated")
        now = self.clock.now()
        start = start.astimezone(UTC).replace(second=0, microsecond=0)
        end = end.astimezone(UTC).replace(second=0, microsecond=0)
        if end < start:
            raise SalesforceError(
                400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate"
            )
        if start < now - timedelta(days=UPDATED_WINDOW_DAYS):
            raise SalesforceError(
                400,
                "INVALID_REPLICATION_DATE",
                f"startDate cannot be more than {UPDATED_WINDOW_DAYS} days ago",
            )
        end = min(end, now.replace(second=0, microsecond=0))
        return fmt_dt(start), fmt_dt(end)

    def get_updated(self, sobject: str, start: datetime, end: datetime) -> dict:
        """Body of ``GET /sobjects/{S}/updated``: ids created or changed in [start, end) (minute
        precision), at most 600,000 (else EXCEEDED_ID_LIMIT)."""
        with self._lock:
            obj = self._data_obj(sobject)
            s, e = self._replication_window(obj, start, end)
            where = "SystemModstamp >= ? AND SystemModstamp < ?"
            if obj.has("IsDeleted"):
                where += " AND IsDeleted = 0"
            ids = [
                r[0]
                for r in self._conn.execute(
                    f'SELECT Id FROM "{obj.name}" WHERE {where} ORDER BY SystemModstamp, rowid LIMIT ?',
                    (s, e, REPLICATION_ID_LIMIT + 1),
                )
            ]
            if len(ids) > REPLICATION_ID_LIMIT:
                raise SalesforceError(
                    400,
                    "EXCEEDED_ID_LIMIT",
                    f"record limit reached. cannot submit more than {REPLICATION_ID_LIMIT} records",
                )
            return {"ids": ids, "latestDateCovered": json_dt(e)}

    def get_deleted(self, sobject: str, start: datetime, end: datetime) -> dict:
        """Body of ``GET /sobjects/{S}/deleted``: records deleted in [start, end) still in the 15-day
        log, and ``earliestDateAvailable`` (if after ``start``, deletions were lost)."""
        with self._lock:
            obj = self._data_obj(sobject)
            self._expire_recycle_bin(obj)
            s, e = self._replication_window(obj, start, end)
            rows = self._conn.execute(
                "SELECT id, deleted_date FROM _deleted WHERE sobject = ? AND deleted_date >= ? AND deleted_date < ? "
                "ORDER BY deleted_date, id LIMIT ?",
                (obj.name, s, e, REPLICATION_ID_LIMIT + 1),
            ).fetchall()
            if len(rows) > REPLICATION_ID_LIMIT:
                raise SalesforceError(
                    400,
                    "EXCEEDED_ID_LIMIT",
                    f"record limit reached. cannot submit more than {REPLICATION_ID_LIMIT} records",
                )
            earliest = (self._meta_get("earliest_available") or {}).get(obj.name) or self._meta_get("created")
            return {
                "deletedRecords": [{"id": i, "deletedDate": json_dt(d)} for i, d in rows],
                "earliestDateAvailable": json_dt(earliest),
                "latestDateCovered": json_dt(e),
            }

    def read_blob(self, sobject: str, record_id: str, field: str) -> bytes:
        """Raw bytes of a base64 field (ContentVersion.VersionData, Attachment.Body, Document.Body) or of
        Note.Body. 404 NOT_FOUND when the record, field or content does not exist."""
        with self._lock:
            obj = self._data_obj(sobject)
            rid = self._norm_id(record_id, obj.name)
            f = obj.field(field)
            if f is None or not (f.type == "base64" or (obj.name, f.name) in BLOB_FIELDS):
                raise not_found()
            row = self._row(obj, rid) if rid[:3] == obj.key_prefix else None
            if row is None or row.get("IsDeleted"):
                raise not_found()
            if f.type != "base64":
                return (row.get(f.name) or "").encode()
            blob = self._conn.execute(
                "SELECT data FROM _blobs WHERE record_id = ? AND field = ?", (rid, f.name)
            ).fetchone()
            if blob is None:
                raise not_found()
            return bytes(blob[0])

    def add_field(self, sobject: str, name: str, field_type: str, **props) -> None:
        """Add a custom field (name ends with ``__c``) to an object: a schema change visible in
        describe (whose modification time moves) and queries. Existing records hold null (false)."""
        allowed = {
            "string",
            "textarea",
            "email",
            "phone",
            "url",
            "picklist",
            "multipicklist",
            "boolean",
            "int",
            "double",
            "currency",
            "percent",
            "date",
            "datetime",
            "time",
        }
        with self.transaction():
            obj = self._data_obj(sobject)
            if not name.endswith("__c") or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*__c", name):
                raise SalesforceError(400, "INVALID_FIELD", f"custom field names end with __c: {name}")
            if obj.has(name):
                raise SalesforceError(
                    400, "DUPLICATE_DEVELOPER_NAME", f"field {name} already exists on {obj.name}"
                )
            if field_type not in allowed:
                raise SalesforceError(
                    400, "INVALID_TYPE", f"unsupported field type for add_field: {field_type}"
                )
            fdef = field_from_spec(name, field_type, props)
            decl = f'"{name}" {_sql_type(fdef)}'
            if fdef.type == "boolean":
                decl += f" NOT NULL DEFAULT {1 if fdef.default else 0}"
            self._conn.execute(f'ALTER TABLE "{obj.name}" ADD COLUMN {decl}')
            with_field(obj, fdef)
            added = self._meta_get("added_fields") or []
            added.append(
                {
                    "sobject": obj.name,
                    "name": name,
                    "type": field_type,
                    "props": {
                        k: v for k, v in props.items() if isinstance(v, str | int | float | bool | list)
                    },
                }
            )
            self._meta_set("added_fields", added)
            stamps = self._meta_get("describe_modified") or {}
            stamps[obj.name] = self._now()
            self._meta_set("describe_modified", stamps)
            self._describe_cache.clear()
            self.schema_version += 1

    def true_records(
        self, sobject: str, *, include_deleted: bool = False, include_blobs: bool = True
    ) -> Iterator[dict]:
        """Every record's stored fields (no formula or compound fields), python-typed: bool, int, float,
        str, date, datetime (UTC), time, bytes (base64 fields). In insertion order."""
        obj = self._data_obj(sobject)
        with self._lock:
            self._expire_recycle_bin(obj)
            fields = [f for f in obj.stored_fields() if f.type != "base64"]
            blob_fields = [f.name for f in obj.stored_fields() if f.type == "base64"] if include_blobs else []
            where = "" if include_deleted or not obj.has("IsDeleted") else "WHERE IsDeleted = 0"
            cols = ", ".join(f'"{f.name}"' for f in fields)
            rows = self._conn.execute(f'SELECT {cols} FROM "{obj.name}" {where} ORDER BY rowid').fetchall()
        conv = [_py_converter(f) for f in fields]
        for row in rows:
            rec = {
                f.name: (c(v) if v is not None else None) for f, c, v in zip(fields, conv, row, strict=True)
            }
            for bf in blob_fields:
                with self._lock:
                    b = self._conn.execute(
                        "SELECT data FROM _blobs WHERE record_id = ? AND field = ?", (rec["Id"], bf)
                    ).fetchone()
                rec[bf] = bytes(b[0]) if b else None
            yield rec


# ---------------------------------------------------------------------------------------- helpers


def _short(v: object, n: int = 40) -> str:
    s = str(v)
    return s if len(s) <= n else s[:n] + "..."


def _child_relationship_name(child: ObjectDef, f: FieldDef) -> str | None:
    if child.name == "ContentDocumentLink" and f.name == "LinkedEntityId":
        return "ContentDocumentLinks"
    if f.custom and f.relationship_name and f.relationship_name.endswith("__r"):
        base = child.name[:-3] if child.name.endswith("__c") else child.name
        return base + "s__r"
    if f.name in ("CreatedById", "LastModifiedById", "OwnerId", "MasterRecordId") or f.name.endswith("ById"):
        return None
    if child.name in ("Task", "Event"):
        return child.name + "s"
    for suffix, plural in (("History", "Histories"), ("Share", "Shares"), ("Tag", "Tags"), ("Feed", "Feeds")):
        if child.name.endswith(suffix) and child.name != suffix:
            return plural
    if f.name == "ParentId" and child.name not in ("Attachment", "Note", "CaseComment"):
        return "Child" + child.name + "s"
    if child.name.endswith("y"):
        return child.name[:-1] + "ies"
    return child.name + ("es" if child.name.endswith("s") else "s")


def _py_converter(f: FieldDef):
    t = f.type
    if t == "boolean":
        return bool
    if t == "datetime":
        return lambda v: parse_dt(v)
    if t == "date":
        return lambda v: date.fromisoformat(v)
    if t == "time":
        return lambda v: time.fromisoformat(v.rstrip("Z"))
    if t in ("double", "currency", "percent"):
        return float
    return lambda v: v


def _query_tag(q: Query) -> int:
    """Ties a page token to its query, so a token cannot continue another query."""
    tag = q.cache.get("tag")
    if tag is None:
        tag = q.cache["tag"] = zlib.crc32(f"{q.text}\x00{q.include_deleted}".encode()) & 0xFFFF
    return tag


def _keyset_condition(order: list[tuple[str, bool, bool]], key: list) -> tuple[str, list]:
    """SQL predicate "row comes after ``key``" for ORDER BY ``order``, rowid (NULL-aware)."""
    params: list = []

    def build(i: int) -> str:
        if i == len(order):
            params.append(key[-1])
            return "t.rowid > ?"
        expr, desc, nulls_last = order[i]
        v = key[i]
        if v is None:
            after = "0" if nulls_last else f"{expr} IS NOT NULL"
            eq = f"{expr} IS NULL"
            eq_params: list = []
            after_params: list = []
        else:
            cmp = "<" if desc else ">"
            after = f"({expr} {cmp} ?" + (f" OR {expr} IS NULL)" if nulls_last else ")")
            after_params = [v]
            eq = f"{expr} = ?"
            eq_params = [v]
        params.extend(after_params)
        params.extend(eq_params)
        return f"({after} OR ({eq} AND {build(i + 1)}))"

    cond = build(0)
    if order and key[0] is not None and not order[0][2]:
        # nulls of the first key are already behind us: a plain range bound lets SQLite use an index
        expr, desc = order[0][0], order[0][1]
        cond = f"{expr} {'<=' if desc else '>='} ? AND {cond}"
        params.insert(0, key[0])
    return cond, params


def _json_plan(q: Query, by_prefix: dict) -> list:
    """Nested rendering plan: list of ("f", name, index, kind) and ("r", rel name, id index, static
    type, sub-plan), in the order of first appearance in the SELECT list."""
    root: list = []
    nodes: dict[tuple[str, ...], list] = {(): root}
    for i, col in enumerate(q.columns):
        path = col.path
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in nodes:
                id_idx, static = q.rel_ids[prefix]
                sub: list = []
                nodes[prefix] = sub
                nodes[path[: depth - 1]].append(("r", path[depth - 1], id_idx, static, sub))
        kind = {"datetime": "dt", "base64": "blob"}.get(col.field_type, "v")
        nodes[path[:-1]].append(("f", path[-1], i, kind))
    return _bind_types(root, by_prefix)


def _bind_types(plan: list, by_prefix: dict) -> list:
    out = []
    for step in plan:
        if step[0] == "r":
            out.append(("r", step[1], step[2], step[3], _bind_types(step[4], by_prefix), by_prefix))
        else:
            out.append(step)
    return out


def _render_node(plan: list, row, type_name: str, rec_id: str, base: str) -> dict:
    rec: dict = {"attributes": {"type": type_name, "url": base + type_name + "/" + rec_id}}
    for step in plan:
        if step[0] == "f":
            _, name, idx, kind = step
            v = row[idx]
            if v is not None:
                if kind == "dt":
                    v = v[:-1] + "+0000"
                elif kind == "blob":
                    v = f"{base}{type_name}/{v}/{name}"
            rec[name] = v
        else:
            _, name, id_idx, static, sub, by_prefix = step
            pid = row[id_idx]
            if pid is None:
                rec[name] = None
            else:
                ptype = static or (by_prefix[pid[:3]].name if pid[:3] in by_prefix else "Name")
                rec[name] = _render_node(sub, row, ptype, pid, base)
    return rec


def _fmt_num(x) -> str:
    if isinstance(x, float):
        s = repr(x)
        if "e" in s or "inf" in s or "nan" in s:
            s = format(x, "f").rstrip("0").rstrip(".") if x == x and abs(x) != float("inf") else ""
        return s
    return str(x)


def _csv_row_fn(q: Query):
    """A generated function row -> CSV line (no per-cell function calls for text columns)."""
    parts = []
    for i, col in enumerate(q.columns):
        t = col.field_type
        if t in ("id", "reference", "date", "datetime", "time"):
            parts.append(f'"{{r[{i}] or ""}}"')
        elif t == "boolean":
            parts.append(f'"{{"" if r[{i}] is None else ("true" if r[{i}] else "false")}}"')
        elif t in NUMBER_TYPES:
            parts.append(f'"{{"" if r[{i}] is None else fmt(r[{i}])}}"')
        elif t in COMPOUND_TYPES or t == "base64":
            parts.append('""')
        else:
            parts.append(f'"{{(r[{i}] or "").replace(QQ, QQQQ)}}"')
    src = "lambda r: f'" + ",".join(parts).replace("'", "\\'") + "'"
    return eval(src, {"fmt": _fmt_num, "QQ": '"', "QQQQ": '""'})  # noqa: S307 - built from the schema
