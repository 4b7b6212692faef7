"""REST API endpoints under ``/services/data/vNN.N/`` (everything except Bulk API 2.0 jobs).

Contract highlights (see the reference doc for the Salesforce behaviour they copy):
- query / queryAll page by the org's keyset cursors; ``nextRecordsUrl`` is
  ``/services/data/vNN.N/query/{locator}-{offset}`` (also for queryAll), the same page can be requested
  again, and a locator older than ``locator_ttl_seconds`` (org clock) or unknown is
  ``400 INVALID_QUERY_LOCATOR``. Page size: 2000, or ``Sforce-Query-Options: batchSize=N`` clamped to
  200..2000, on the query or on any "query more" request (without the header, the query's size).
- sObject Collections (≤ 200 records) answer per record in request order; with ``allOrNone`` a failure
  rolls the others back (best effort: creates are purged, updates re-applied, deletes undeleted).
- composite (≤ 25 sub-requests) substitutes ``@{referenceId.path}`` in URLs and bodies. At most
  ``MAX_COMPOSITE_QUERIES`` of them may be query operations (``query``, ``queryAll`` and their
  ``nextRecordsUrl`` continuations); more and the whole request is refused before any sub-request runs:
  200 with a single ``compositeResponse`` entry (``referenceId`` null, ``httpStatusCode`` 400,
  ``LIMIT_EXCEEDED``) — the shape is our best guess, see the README.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import SalesforceError
from .faults import RuleAction
from .ids import IdFactory, is_valid_id
from .server import Reply, Request, error_reply, json_reply

if TYPE_CHECKING:
    from .server import EmulatorServer

MAX_COLLECTION = 200
MAX_COMPOSITE = 25
MAX_COMPOSITE_QUERIES = 5  # Query, QueryAll and "query more" sub-requests in one composite request
_QUERY_SUB = re.compile(r"^/services/data/v\d{2,3}\.\d/(query|queryAll)(/|\?|$)")
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.I)
_WHERE = re.compile(r"\bwhere\b", re.I)
_REF = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


@dataclass
class _Cursor:
    """Server-side state of a query locator: the compiled query and the keyset token per offset."""

    id: str
    query: Any
    total: int
    batch: int
    limit: int | None
    created: datetime
    afters: dict[int, str | None] = field(default_factory=dict)


def parse_sf_datetime(text: str | None, name: str) -> datetime:
    """Parse an ISO 8601 datetime as clients send it (``+00:00``, ``Z``, ``.000+0000``)."""
    if not text:
        raise SalesforceError(400, "MALFORMED_QUERY", f"Missing required parameter: {name}")
    value = text.strip().replace(" ", "+")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    m = re.match(r"^(.*[T ]\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(\d\d)$", value)
    if m:
        value = f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SalesforceError(
            400, "INVALID_REPLICATION_DATE", f"Invalid date format for {name}: {text}"
        ) from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class RestApi:
    """Serves the REST resources of one emulator."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emu = emulator
        self._cursors: dict[str, _Cursor] = {}
        self._lock = threading.Lock()
        self._ids = IdFactory(seed=zlib.crc32(emulator.org.org_id.encode()) + 1)

    @property
    def org(self) -> Any:
        return self.emu.org

    # -- routing ------------------------------------------------------------------------------------
    def handle(self, req: Request, version: str, rest: str) -> Reply:
        parts = [unquote(p) for p in rest.split("/") if p]
        method = req.method
        if not parts:
            return json_reply(self._resources(version))
        head = parts[0]
        if head == "sobjects":
            return self._sobjects(req, version, parts[1:])
        if head in ("query", "queryAll"):
            if method != "GET":
                raise _not_allowed(method, "GET")
            if len(parts) == 1:
                return self._query(req, version, include_deleted=head == "queryAll")
            return self._query_more(req, version, parts[1])
        if head == "limits" and len(parts) == 1:
            return json_reply(self.emu.usage.limits_body())
        if head == "limits" and parts[1:] == ["recordCount"]:
            if method != "GET":
                raise _not_allowed(method, "GET")
            return json_reply(self._record_count(req.param("sObjects")))
        if head == "composite":
            if len(parts) >= 2 and parts[1] == "sobjects":
                return self._collections(req, version, parts[2:])
            if len(parts) == 1:
                return self._composite(req, version)
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")

    def _resources(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}"
        names = ["sobjects", "query", "queryAll", "limits", "composite", "jobs"]
        return {n: f"{base}/{n}" for n in names}

    def _record_count(self, names_param: str | None) -> dict[str, Any]:
        """``GET /limits/recordCount[?sObjects=A,B]``: live (not deleted) records per object, as
        ``{"sObjects": [{"count": n, "name": "A"}, ...]}``. Salesforce computes these periodically
        (approximate, may lag); the emulator counts exactly. Names it does not know are left out."""
        org = self.org
        known = {n.lower(): n for n in org.object_names()}
        wanted = [w.strip() for w in names_param.split(",")] if names_param else list(known.values())
        out = []
        for name in wanted:
            real = known.get(name.lower())
            if real is None:
                continue
            out.append({"count": org.record_count(real), "name": real})
        return {"sObjects": out}

    # -- sObjects -----------------------------------------------------------------------------------
    def _sobjects(self, req: Request, version: str, parts: list[str]) -> Reply:
        org, method = self.org, req.method
        if not parts:
            if method != "GET":
                raise _not_allowed(method, "GET")
            return json_reply(org.describe_global(api_version=version))
        sobject = parts[0]
        if len(parts) == 1:
            if method == "GET":
                return json_reply({"objectDescribe": self._global_entry(sobject, version), "recentItems": []})
            if method == "POST":
                values = self._record_body(req, sobject)
                record_id = org.create(sobject, values)
                return json_reply({"id": record_id, "success": True, "errors": []}, 201)
            raise _not_allowed(method, "GET, POST")
        second = parts[1]
        if len(parts) == 2 and second == "describe":
            return self._describe(req, sobject, version)
        if len(parts) == 2 and second in ("updated", "deleted"):
            start = parse_sf_datetime(req.param("start"), "start")
            end = parse_sf_datetime(req.param("end"), "end")
            if second == "updated":
                return json_reply(org.get_updated(sobject, start, end))
            return json_reply(org.get_deleted(sobject, start, end))
        if len(parts) == 2:
            record_id = second
            if method == "GET":
                fields = req.param("fields")
                wanted = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
                return json_reply(org.retrieve(sobject, record_id, wanted, api_version=version))
            if method == "PATCH":
                org.update(sobject, record_id, self._record_body(req, sobject))
                return Reply(204, b"", None)
            if method == "DELETE":
                org.delete(sobject, record_id)
                return Reply(204, b"", None)
            raise _not_allowed(method, "GET, PATCH, DELETE")
        if len(parts) == 3:
            key, value = parts[1], parts[2]
            if is_valid_id(key) and method == "GET" and not is_valid_id(value):
                return self._blob(sobject, key, value)
            return self._by_external_id(req, version, sobject, key, value)
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")

    def _record_body(self, req: Request, sobject: str) -> dict[str, Any]:
        """Field values of a create / update: a JSON object, or a multipart/form-data body (JSON part
        ``entity_content`` for ContentVersion, ``entity_document`` for Document and Attachment, then a
        binary part named after the blob field, ``VersionData`` / ``Body``). Size limits as in
        :class:`ServerOptions`; over them: 400 ``JSON_PARSER_ERROR`` (JSON body),
        ``STRING_TOO_LONG`` (base64 value) or ``FILE_SIZE_LIMIT_EXCEEDED`` (multipart blob)."""
        opts = self.emu.options
        content_type = req.header("Content-Type") or ""
        if content_type.lower().startswith("multipart/"):
            return self._multipart_values(req, sobject, content_type)
        if len(req.body) > opts.max_json_body_bytes:
            raise SalesforceError(
                400,
                "JSON_PARSER_ERROR",
                f"Maximum size of request reached. Maximum size of request is {opts.max_json_body_bytes} bytes.",
            )
        values = _record_values(req.json())
        obj = self.org.objects.get(sobject.lower())
        for name, value in values.items():
            f = obj.field(name) if obj is not None else None
            if (
                f is not None
                and f.type == "base64"
                and isinstance(value, str)
                and len(value) > opts.max_base64_chars
            ):
                raise SalesforceError(
                    400,
                    "STRING_TOO_LONG",
                    f"{f.name}: base64 data too large ({len(value)} characters, max {opts.max_base64_chars}); "
                    "use a multipart request",
                    [f.name],
                )
        return values

    def _multipart_values(self, req: Request, sobject: str, content_type: str) -> dict[str, Any]:
        from requests_toolbelt.multipart.decoder import (
            ImproperBodyPartContentException,
            MultipartDecoder,
            NonMultipartContentTypeException,
        )

        obj = self.org.objects.get(sobject.lower())
        blob = next((f for f in obj.fields if f.type == "base64"), None) if obj is not None else None
        if obj is None or blob is None:
            raise SalesforceError(
                415 if obj is not None else 404,
                "UNSUPPORTED_MEDIA_TYPE" if obj is not None else "NOT_FOUND",
                f"multipart requests are only accepted for objects with a blob field, not {sobject}",
            )
        entity_name = "entity_content" if obj.name == "ContentVersion" else "entity_document"
        try:
            parts = MultipartDecoder(req.body, content_type).parts
        except (ImproperBodyPartContentException, NonMultipartContentTypeException, ValueError) as exc:
            raise SalesforceError(400, "MALFORMED_REQUEST", f"Malformed multipart body: {exc}") from None
        named: dict[str, Any] = {}
        for part in parts:
            disposition = part.headers.get(b"Content-Disposition", b"").decode("utf-8", "replace")
            m = re.search(r'\bname="?([^";]+)"?', disposition)
            if m:
                named[m.group(1)] = part
        if entity_name not in named:
            raise SalesforceError(
                400,
                "MALFORMED_REQUEST",
                f"Multipart request for {obj.name} needs a JSON part named {entity_name}; "
                f"got {sorted(named) or 'none'}",
            )
        try:
            values = _record_values(json.loads(named[entity_name].content))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SalesforceError(
                400, "JSON_PARSER_ERROR", f"Unexpected character in JSON part: {exc}"
            ) from None
        data_part = named.get(blob.name)
        if data_part is not None:
            data = data_part.content
            limit = (
                self.emu.options.max_content_version_bytes
                if obj.name == "ContentVersion"
                else (self.emu.options.max_blob_bytes)
            )
            if len(data) > limit:
                raise SalesforceError(
                    400,
                    "FILE_SIZE_LIMIT_EXCEEDED",
                    f"{obj.name}.{blob.name}: file of {len(data)} bytes exceeds the maximum size of {limit} bytes",
                    [blob.name],
                )
            values[blob.name] = data
        return values

    def _global_entry(self, sobject: str, version: str) -> dict[str, Any]:
        for entry in self.org.describe_global(api_version=version)["sobjects"]:
            if entry["name"].lower() == sobject.lower():
                return entry
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")

    def _describe(self, req: Request, sobject: str, version: str) -> Reply:
        if req.method != "GET":
            raise _not_allowed(req.method, "GET")
        body = self.org.describe(sobject, api_version=version)
        modified = self.org.describe_modified_at(sobject)
        last_modified = format_datetime(modified.astimezone(UTC).replace(microsecond=0), usegmt=True)
        since = req.header("If-Modified-Since")
        if since:
            try:
                when = parsedate_to_datetime(since)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                if modified.replace(microsecond=0) <= when:
                    return Reply(304, b"", None, {"Last-Modified": last_modified})
        reply = json_reply(body)
        reply.headers["Last-Modified"] = last_modified
        return reply

    def _blob(self, sobject: str, record_id: str, field_name: str) -> Reply:
        data = self.org.read_blob(sobject, record_id, field_name)
        return Reply(200, bytes(data), "application/octet-stream")

    def _by_external_id(self, req: Request, version: str, sobject: str, ext_field: str, value: str) -> Reply:
        org, method = self.org, req.method
        if method == "PATCH":
            values = _record_values(req.json())
            try:
                record_id, created = org.upsert(sobject, ext_field, value, values)
            except SalesforceError as exc:
                if exc.status != 300:
                    raise
                ids = self._find_by_external_id(sobject, ext_field, value)
                return json_reply([f"/services/data/v{version}/sobjects/{sobject}/{i}" for i in ids], 300)
            if created:
                return json_reply({"id": record_id, "success": True, "errors": [], "created": True}, 201)
            return Reply(204, b"", None)
        if method == "GET":
            ids = self._find_by_external_id(sobject, ext_field, value)
            if not ids:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if len(ids) > 1:
                return json_reply([f"/services/data/v{version}/sobjects/{sobject}/{i}" for i in ids], 300)
            return json_reply(org.retrieve(sobject, ids[0], None, api_version=version))
        if method == "DELETE":
            ids = self._find_by_external_id(sobject, ext_field, value)
            if not ids:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if len(ids) > 1:
                return json_reply([f"/services/data/v{version}/sobjects/{sobject}/{i}" for i in ids], 300)
            org.delete(sobject, ids[0])
            return Reply(204, b"", None)
        raise _not_allowed(method, "GET, PATCH, DELETE")

    def _find_by_external_id(self, sobject: str, ext_field: str, value: str) -> list[str]:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ext_field) or not re.fullmatch(
            r"[A-Za-z0-9_]+", sobject
        ):
            raise SalesforceError(
                404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible"
            )
        literal = value.replace("\\", "\\\\").replace("'", "\\'")
        q = self.org.compile(f"SELECT Id FROM {sobject} WHERE {ext_field} = '{literal}' LIMIT 3")
        return [str(r[0]) for r in self.org.fetch(q, None, 3).rows]

    # -- query --------------------------------------------------------------------------------------
    def _batch_size(self, req: Request, q: Any) -> int:
        """Rows per page: the default (2000) or the batchSize hint (clamped to 200-2000), capped at 200
        when the select has several long text area fields (see ServerOptions.long_text_fields)."""
        opts = self.emu.options
        size = opts.default_batch_size
        options = req.header("Sforce-Query-Options")
        if options:
            m = _BATCH.search(options)
            if m:
                size = max(200, min(2000, int(m.group(1))))
        if opts.long_text_fields is not None and q.long_text_columns >= opts.long_text_fields:
            size = min(size, opts.long_text_batch_size)
        return size

    def _query(self, req: Request, version: str, *, include_deleted: bool) -> Reply:
        soql = req.param("q")
        if not soql or not soql.strip():
            raise SalesforceError(400, "MALFORMED_QUERY", "A query string (q parameter) is required")
        q = self.org.compile(soql, include_deleted=include_deleted)
        if (req.param("columns") or "").lower() == "true":
            return json_reply(self._columns(q))
        total = self.org.count(q)
        limit = getattr(q, "limit", None)
        if limit is not None:
            total = min(total, limit)
        if getattr(q, "is_count", False):
            return json_reply({"totalSize": total, "done": True, "records": []})
        threshold = self.emu.faults.query_timeout_rows
        if threshold is not None and total > threshold and not _WHERE.search(soql):
            raise SalesforceError(400, "QUERY_TIMEOUT", "Your query request was running for too long.")
        cursor = _Cursor(
            id=self._ids.new_id("01g"),
            query=q,
            total=total,
            batch=self._batch_size(req, q),
            limit=limit,
            created=self.org.clock.now(),
        )
        cursor.afters[0] = None
        return self._page(cursor, 0, version)

    def _query_more(self, req: Request, version: str, locator: str) -> Reply:
        if self.emu.faults.invalid_locator:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor_id, _, offset_text = locator.rpartition("-")
        with self._lock:
            cursor = self._cursors.get(cursor_id)
            ttl = self.emu.options.locator_ttl_seconds
            now = self.org.clock.now()
            expired = [k for k, c in self._cursors.items() if (now - c.created).total_seconds() > ttl]
            for k in expired:
                del self._cursors[k]
            if cursor is not None and cursor.id in expired:
                cursor = None
        if cursor is None or not offset_text.isdigit() or int(offset_text) not in cursor.afters:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        # the batch size hint applies to "query more" too (Salesforce's QueryOptions: query and
        # queryMore); without one, the page size of the query that made the locator
        size = self._batch_size(req, cursor.query) if req.header("Sforce-Query-Options") else None
        return self._page(cursor, int(offset_text), version, size=size)

    def _page(self, cursor: _Cursor, offset: int, version: str, *, size: int | None = None) -> Reply:
        org, q = self.org, cursor.query
        size = cursor.batch if size is None else size
        if cursor.limit is not None:
            size = min(size, max(0, cursor.limit - offset))
        rows: list[Any] = []
        next_after: str | None = None
        if size > 0:
            page = org.fetch(q, cursor.afters[offset], size)
            rows, next_after = list(page.rows), page.next_after
        end = offset + len(rows)
        done = next_after is None or not rows or end >= cursor.total
        body: dict[str, Any] = {"totalSize": cursor.total, "done": done}
        if not done:
            with self._lock:
                cursor.afters[end] = next_after
                self._cursors[cursor.id] = cursor
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor.id}-{end}"
        body["records"] = org.render_json(q, rows, api_version=version)
        return json_reply(body)

    def _columns(self, q: Any) -> dict[str, Any]:
        columns = []
        for col in q.columns:
            name = getattr(col, "name", str(col))
            ftype = str(getattr(col, "field_type", "string"))
            columns.append(
                {
                    "aggregate": False,
                    "apexType": None,
                    "booleanType": ftype == "boolean",
                    "columnName": name.rsplit(".", 1)[-1],
                    "custom": name.endswith("__c"),
                    "displayName": name,
                    "foreignKeyName": None,
                    "insertable": False,
                    "joinColumns": [],
                    "numberType": ftype in ("int", "double", "currency", "percent", "long"),
                    "textType": ftype not in ("int", "double", "currency", "percent", "long", "boolean"),
                    "updatable": False,
                }
            )
        return {
            "columnMetadata": columns,
            "entityName": q.object_name,
            "groupBy": False,
            "idSelected": any(getattr(c, "name", "") == "Id" for c in q.columns),
            "keyPrefix": None,
        }

    # -- sObject Collections -------------------------------------------------------------------------
    def _collections(self, req: Request, version: str, parts: list[str]) -> Reply:
        method = req.method
        if method == "DELETE":
            ids = [i for i in (req.param("ids") or "").split(",") if i]
            all_or_none = (req.param("allOrNone") or "false").lower() == "true"
            _check_collection_size(ids)
            return json_reply(self._run_collection("delete", [{"id": i} for i in ids], all_or_none))
        if method == "GET" and len(parts) == 1:
            ids = [i for i in (req.param("ids") or "").split(",") if i]
            fields = [f for f in (req.param("fields") or "").split(",") if f] or None
            _check_collection_size(ids)
            out = []
            for record_id in ids:
                try:
                    out.append(self.org.retrieve(parts[0], record_id, fields, api_version=version))
                except SalesforceError:
                    out.append(None)
            return json_reply(out)
        payload = req.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected an object with a records array")
        records = payload["records"]
        all_or_none = bool(payload.get("allOrNone", False))
        _check_collection_size(records)
        if method == "POST" and not parts:
            return json_reply(self._run_collection("create", records, all_or_none))
        if method == "PATCH" and not parts:
            return json_reply(self._run_collection("update", records, all_or_none))
        if method == "PATCH" and len(parts) == 2:
            return json_reply(self._run_collection("upsert", records, all_or_none, parts[0], parts[1]))
        raise _not_allowed(method, "POST, PATCH, DELETE")

    def _run_collection(
        self,
        op: str,
        records: list[Any],
        all_or_none: bool,
        sobject: str | None = None,
        ext_field: str | None = None,
    ) -> list[dict[str, Any]]:
        org = self.org
        results: list[dict[str, Any]] = []
        undo: list[tuple[str, str, str, Any]] = []
        failed = False
        for raw in records:
            rec = dict(raw) if isinstance(raw, dict) else {}
            attrs = rec.pop("attributes", None) or {}
            obj = sobject or attrs.get("type")
            record_id = rec.pop("id", None) or rec.pop("Id", None)
            try:
                if op != "delete" and not obj:
                    raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
                if op == "create":
                    new_id = org.create(obj, rec)
                    undo.append(("create", obj, new_id, None))
                    results.append({"id": new_id, "success": True, "errors": []})
                elif op == "update":
                    if not record_id:
                        raise SalesforceError(
                            400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]
                        )
                    before = org.retrieve(obj, record_id, list(rec)) if all_or_none else None
                    org.update(obj, record_id, rec)
                    undo.append(("update", obj, record_id, before))
                    results.append({"id": record_id, "success": True, "errors": []})
                elif op == "upsert":
                    ext_value = rec.get(ext_field or "")
                    if ext_value is None:
                        raise SalesforceError(
                            400, "MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field or ""]
                        )
                    values = {k: v for k, v in rec.items() if k != ext_field}
                    new_id, created = org.upsert(obj, ext_field, str(ext_value), values)
                    results.append({"id": new_id, "success": True, "errors": [], "created": created})
                    if created:
                        undo.append(("create", obj or "", new_id, None))
                else:
                    if not record_id or not is_valid_id(record_id):
                        raise SalesforceError(400, "MALFORMED_ID", f"malformed id {record_id}", [])
                    org.delete(self._object_of(record_id), record_id)
                    undo.append(("delete", "", record_id, None))
                    results.append({"id": record_id, "success": True, "errors": []})
            except SalesforceError as exc:
                failed = True
                results.append(
                    {
                        "id": record_id if op in ("update", "delete") else None,
                        "success": False,
                        "errors": [
                            {"statusCode": exc.error_code, "message": exc.message, "fields": exc.fields}
                        ],
                    }
                )
                if all_or_none:
                    break
        if failed and all_or_none:
            self._rollback(undo)
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request "
                "was using AllOrNone header",
                "fields": [],
            }
            out = []
            for i in range(len(records)):
                if i < len(results) and not results[i]["success"]:
                    out.append({**results[i], "id": None})
                else:
                    out.append({"id": None, "success": False, "errors": [rolled]})
            return out
        return results

    def _object_of(self, record_id: str) -> str:
        prefix = record_id[:3]
        for entry in self.org.describe_global()["sobjects"]:
            if entry.get("keyPrefix") == prefix:
                return entry["name"]
        raise SalesforceError(404, "NOT_FOUND", f"No object with key prefix {prefix}")

    def _rollback(self, undo: list[tuple[str, str, str, Any]]) -> None:
        for kind, obj, record_id, before in reversed(undo):
            try:
                if kind == "create":
                    self.org.delete(obj, record_id)
                    self.org.purge(record_id)
                elif kind == "update" and before is not None:
                    values = {k: v for k, v in before.items() if k not in ("attributes", "Id")}
                    self.org.update(obj, record_id, values)
                elif kind == "delete":
                    self.org.undelete(record_id)
            except SalesforceError:
                pass

    # -- composite ----------------------------------------------------------------------------------
    def _composite(self, req: Request, version: str) -> Reply:
        if req.method != "POST":
            raise _not_allowed(req.method, "POST")
        payload = req.json()
        subs = payload.get("compositeRequest") if isinstance(payload, dict) else None
        if not isinstance(subs, list) or not subs:
            raise SalesforceError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        if len(subs) > MAX_COMPOSITE:
            raise SalesforceError(
                400,
                "INVALID_BATCH_REQUEST",
                f"Exceeded max number of subrequests ({MAX_COMPOSITE}) in composite request",
            )
        queries = sum(1 for sub in subs if isinstance(sub, dict) and _is_query_sub(str(sub.get("url", ""))))
        if queries > MAX_COMPOSITE_QUERIES:
            return json_reply({"compositeResponse": [_refused_whole(queries)]})
        all_or_none = bool(payload.get("allOrNone", False))
        results: dict[str, Any] = {}
        out: list[dict[str, Any]] = []
        undo: list[tuple[str, str, str, Any]] = []
        halted = False
        for sub in subs:
            ref = str(sub.get("referenceId", ""))
            if halted:
                out.append(_halted(ref))
                continue
            try:
                url = _substitute(str(sub.get("url", "")), results, in_url=True)
                body = sub.get("body")
                if body is not None:
                    body = json.loads(_substitute(json.dumps(body), results, in_url=False))
                method = str(sub.get("method", "GET")).upper()
                target = _sobject_target(url)
                before = None
                if all_or_none and target and target[1] and method == "PATCH" and isinstance(body, dict):
                    before = self.org.retrieve(target[0], target[1], list(body))
                reply = self._subrequest(method, url, body, sub.get("httpHeaders") or {}, version)
                if all_or_none and target and reply.status < 400:
                    if method == "POST" and not target[1] and isinstance(reply.value, dict):
                        undo.append(("create", target[0], reply.value.get("id"), None))
                    elif method == "PATCH" and target[1] and before is not None:
                        undo.append(("update", target[0], target[1], before))
                    elif method == "DELETE" and target[1]:
                        undo.append(("delete", target[0], target[1], None))
            except SalesforceError as exc:
                reply = error_reply(exc)
            value = reply.value
            if value is None and isinstance(reply.body, bytes) and reply.body and reply.status != 204:
                try:
                    value = json.loads(reply.body)
                except ValueError:
                    value = None
            results[ref] = value
            headers = {k: v for k, v in reply.headers.items() if k in ("Location", "Last-Modified")}
            if reply.status == 201 and isinstance(value, dict) and value.get("id"):
                headers["Location"] = f"/services/data/v{version}/sobjects/{value['id']}"
            out.append(
                {"body": value, "httpHeaders": headers, "httpStatusCode": reply.status, "referenceId": ref}
            )
            if reply.status >= 400 and all_or_none:
                halted = True
        if halted:
            self._rollback(undo)
            out = [
                o if o["httpStatusCode"] >= 400 else _halted(o["referenceId"], rolled_back=True) for o in out
            ]
        return json_reply({"compositeResponse": out})

    def _subrequest(self, method: str, url: str, body: Any, headers: dict[str, str], version: str) -> Reply:
        split = urlsplit(url)
        m = re.match(r"^/services/data/v(\d{2,3}\.\d)(/.*)$", split.path)
        if not m:
            raise SalesforceError(400, "INVALID_URL", f"Invalid composite subrequest URL: {url}")
        if m.group(2).startswith(("/composite", "/jobs")):
            raise SalesforceError(400, "INVALID_URL", "This resource is not supported in a composite request")
        msg = _Headers(headers)
        sub = Request(
            method=method.upper(),
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=msg,  # type: ignore[arg-type]
            body=json.dumps(body).encode() if body is not None else b"",
            raw_path=split.path,
        )
        parts = [p for p in m.group(2).split("/") if p]
        if len(parts) >= 4 and parts[0] == "sobjects" and method.upper() == "GET" and is_valid_id(parts[2]):
            raise SalesforceError(400, "INVALID_URL", "Blob fields are not available in composite requests")
        rule = self.emu.faults.take_rule(method.upper(), split.path, sub_request=True)
        if rule is not None and rule.action is RuleAction.ERROR:
            raise SalesforceError(rule.status, rule.error_code, rule.message)
        return self.handle(sub, m.group(1), m.group(2))


def _sobject_target(url: str) -> tuple[str, str | None] | None:
    """``(sobject, record id or None)`` for ``/services/data/vNN.N/sobjects/S[/id]`` URLs, else ``None``."""
    m = re.match(
        r"^/services/data/v\d{2,3}\.\d/sobjects/([A-Za-z0-9_]+)/?([A-Za-z0-9]{15,18})?/?$", urlsplit(url).path
    )
    if not m:
        return None
    return m.group(1), m.group(2)


class _Headers(dict):  # type: ignore[type-arg]
    """A case-insensitive ``.get`` over a plain dict (what composite sub-requests carry)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        for k, v in self.items():
            if k.lower() == key.lower():
                return v
        return default


def _is_query_sub(url: str) -> bool:
    """A Query / QueryAll sub-request, or a "query more" through a ``nextRecordsUrl`` (literal, or
    referenced from an earlier sub-request's answer)."""
    return bool(_QUERY_SUB.match(url)) or "nextRecordsUrl}" in url


def _refused_whole(queries: int) -> dict[str, Any]:
    """The answer to a composite request with too many query operations: one entry that names no
    sub-request, as Salesforce refuses a composite over its 25-operation limit (observed shape; the
    message for the query limit is ours)."""
    message = (
        f"The request can't contain more than {MAX_COMPOSITE_QUERIES} query operations "
        f"(it contains {queries})."
    )
    return {
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": None,
    }


def _halted(ref: str, rolled_back: bool = False) -> dict[str, Any]:
    code = "PROCESSING_HALTED"
    message = (
        "The transaction was rolled back since another operation in the same transaction failed."
        if rolled_back
        else "The transaction was rolled back since another operation in the same transaction failed."
    )
    return {
        "body": [{"errorCode": code, "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": ref,
    }


def _lookup(value: Any, path: str) -> Any:
    for token in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        name, index = token
        if name:
            if not isinstance(value, dict) or name not in value:
                raise KeyError(name)
            value = value[name]
        else:
            value = value[int(index)]
    return value


def _substitute(text: str, results: dict[str, Any], *, in_url: bool) -> str:
    def repl(m: re.Match[str]) -> str:
        ref, path = m.group(1), m.group(2)
        if ref not in results:
            raise SalesforceError(
                400, "INVALID_REFERENCE", f"Invalid reference specified. No value for {ref}"
            )
        try:
            value = _lookup(results[ref], path)
        except (KeyError, IndexError, TypeError) as exc:
            raise SalesforceError(
                400, "INVALID_REFERENCE", f"Invalid reference specified. No value for {ref}{path} found"
            ) from exc
        text_value = value if isinstance(value, str) else json.dumps(value)
        return text_value if in_url else json.dumps(text_value)[1:-1]

    return _REF.sub(repl, text)


def _record_values(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object with field values")
    return {k: v for k, v in payload.items() if k != "attributes"}


def _check_collection_size(items: list[Any]) -> None:
    if len(items) > MAX_COLLECTION:
        raise SalesforceError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION} records in this operation",
        )


def _not_allowed(method: str, allowed: str) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )
