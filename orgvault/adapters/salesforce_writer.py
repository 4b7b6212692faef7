"""``SalesforceTarget`` on simple-salesforce: the write side used by restores.

Contract (see :class:`orgvault.ports.SalesforceTarget`):

* Login, session re-use, the API budget, usage tracking and error translation are those of
  :class:`orgvault.adapters.salesforce.SimpleSalesforceSource` (this adapter wraps one; the two share
  the session, the token and the ``calls`` counter).
* **Retries.** 5xx answers and an expired session (one re-login) are retried for every call: Salesforce
  did not process the request. A connection that drops *after* an insert was sent is NOT retried here
  (the insert may have happened): ``SalesforceUnavailable`` is raised with ``maybe_written=True`` and
  the restore job reconciles that batch before trying again, so nothing is created twice.
* **Writes.** sObject Collections (``/composite/sobjects``, at most 200 records a call, ``allOrNone``
  false, results in request order) below ``bulk_threshold`` records; Bulk API 2.0 ingest above it
  (CSV; ``#N/A`` for an explicit null, an empty cell leaves the value as is), its successful and
  failed results mapped back to input order. Every method returns one ``WriteResult`` per record, in
  input order; a record-level error is a result, never an exception.
* **Files.** :meth:`upload_file` inserts ContentVersion / Attachment / Document with their body by
  multipart upload (limits: 2 GB ContentVersion, 500 MB others, checked before sending).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from orgvault.adapters.salesforce import (
    _TRANSPORT_ERRORS,
    SimpleSalesforceSource,
    _check_name,
    _error_parts,
    _path,
    _scrub,
    translate_error,
)
from orgvault.errors import SalesforceRequestError, SalesforceUnavailable, WriteMaybeApplied
from orgvault.ports import ApiUsage, ObjectSchema, WriteResult

log = logging.getLogger(__name__)

COLLECTION_SIZE = 200
CONTENT_VERSION_MAX = 2 * 1024**3
OTHER_BODY_MAX = 500 * 1024**2
JSON_BODY_MAX = 37_500_000  # 50 MB of JSON once base64-encoded
_BODY_FIELDS = {"ContentVersion": "VersionData", "Attachment": "Body", "Document": "Body"}


def _value_for_csv(v: Any) -> str:
    if v is None:
        return "#N/A"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _result_from_collection(item: Mapping[str, Any]) -> WriteResult:
    errs = tuple(
        f"{e.get('statusCode') or e.get('errorCode') or 'ERROR'}: {e.get('message', '')}"
        + (f" ({', '.join(e['fields'])})" if e.get("fields") else "")
        for e in (item.get("errors") or [])
    )
    return WriteResult(
        success=bool(item.get("success")),
        id=item.get("id") or None,
        created=bool(item.get("created", False)),
        errors=errs,
    )


class SalesforceWriter:
    """Write access to one org (see the module docstring)."""

    def __init__(
        self,
        source: SimpleSalesforceSource,
        *,
        bulk_threshold: int = 2000,
        bulk_poll_seconds: float = 0.5,
        bulk_timeout_seconds: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.bulk_threshold = bulk_threshold
        self.bulk_poll_seconds = bulk_poll_seconds
        self.bulk_timeout_seconds = bulk_timeout_seconds
        self._sleep = sleep
        self._describes: dict[str, ObjectSchema] = {}
        self.bulk_jobs = 0
        self._user_id = ""
        self._multipart = True  # cleared when the org refuses multipart uploads (JSON base64 is used)

    def __repr__(self) -> str:
        return f"SalesforceWriter({self.source!r})"

    @property
    def calls(self) -> int:
        return self.source.calls

    # --- reads the restore needs -------------------------------------------------------------------

    def org_id(self) -> str:
        return self.source.org_id()

    def api_usage(self) -> ApiUsage | None:
        return self.source.api_usage()

    def list_objects(self) -> list[dict[str, Any]]:
        return self.source.list_objects()

    def describe(self, object_name: str) -> ObjectSchema:
        if object_name not in self._describes:
            self._describes[object_name] = self.source.describe(object_name)
        return self._describes[object_name]

    def query(self, soql: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url = f"{self.source.data_url}/query"
        params: dict[str, Any] | None = {"q": soql}
        while True:
            body = self.source._json("GET", url, params=params)
            for r in body.get("records") or []:
                out.append({k: v for k, v in r.items() if k != "attributes" and not isinstance(v, Mapping)})
            nxt = body.get("nextRecordsUrl")
            if body.get("done", True) or not nxt:
                return out
            url, params = f"{self.source.instance_url}{nxt}", None

    def current_user_id(self) -> str:
        if not self._user_id:
            info = self.source._json("GET", f"{self.source.instance_url}/services/oauth2/userinfo")
            self._user_id = str(info.get("user_id") or "")
        return self._user_id

    def existing_ids(self, object_name: str, ids: list[str]) -> set[str]:
        _check_name(object_name, "object")
        found: set[str] = set()
        if object_name == "ContentDocumentLink":
            # Salesforce refuses to query links by Id; links are checked by document and parent instead
            return found
        uniq = sorted({i[:15] for i in ids if i})
        for i in range(0, len(uniq), 300):
            part = uniq[i : i + 300]
            in_list = ",".join(f"'{x}'" for x in part)
            for r in self.query(f"SELECT Id FROM {object_name} WHERE Id IN ({in_list})"):
                found.add(str(r["Id"])[:15])
        return found

    # --- writes ------------------------------------------------------------------------------------

    def insert(self, object_name: str, records: list[dict[str, Any]]) -> list[WriteResult]:
        return self._write("insert", object_name, records)

    def update(self, object_name: str, records: list[dict[str, Any]]) -> list[WriteResult]:
        if any(not r.get("Id") for r in records):
            raise SalesforceRequestError("every record of an update needs its Id", error_code="MISSING_ID")
        return self._write("update", object_name, records)

    def upsert(
        self, object_name: str, external_id_field: str, records: list[dict[str, Any]]
    ) -> list[WriteResult]:
        _check_name(external_id_field, "field")
        return self._write("upsert", object_name, records, external_id_field=external_id_field)

    def _write(
        self, operation: str, object_name: str, records: list[dict[str, Any]], *, external_id_field: str = ""
    ) -> list[WriteResult]:
        _check_name(object_name, "object")
        if not records:
            return []
        if len(records) > self.bulk_threshold:
            return self._bulk(operation, object_name, records, external_id_field)
        out: list[WriteResult] = []
        for i in range(0, len(records), COLLECTION_SIZE):
            out.extend(
                self._collection(operation, object_name, records[i : i + COLLECTION_SIZE], external_id_field)
            )
        return out

    def _collection(
        self, operation: str, object_name: str, batch: list[dict[str, Any]], external_id_field: str
    ) -> list[WriteResult]:
        payload: dict[str, Any] = {
            "allOrNone": False,
            "records": [{"attributes": {"type": object_name}, **r} for r in batch],
        }
        base = f"{self.source.data_url}/composite/sobjects"
        if operation == "insert":
            method, url = "POST", base
        elif operation == "update":
            method, url = "PATCH", base
        else:
            method, url = "PATCH", f"{base}/{object_name}/{external_id_field}"
            for r in payload["records"]:
                r.pop("Id", None)
        resp = self._send(
            method,
            url,
            data=json.dumps(payload).encode(),
            content_type="application/json",
            idempotent=operation != "insert",
            ok=(200, 201),
        )
        items = resp.json()
        if not isinstance(items, list) or len(items) != len(batch):
            raise SalesforceRequestError(
                f"sObject Collections answered {len(items) if isinstance(items, list) else 'no'} results "
                f"for {len(batch)} records",
                error_code="MALFORMED",
            )
        return [_result_from_collection(it) for it in items]

    # --- Bulk API 2.0 ingest -----------------------------------------------------------------------

    def _bulk(
        self, operation: str, object_name: str, records: list[dict[str, Any]], external_id_field: str
    ) -> list[WriteResult]:
        columns = list(dict.fromkeys(k for r in records for k in r))
        if operation == "upsert" and "Id" in columns:
            columns.remove("Id")
        # A per-record tag column is not possible (Salesforce rejects unknown columns), so results
        # are matched back to input rows by their values; identical rows get identical outcomes.
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
        w.writerow(columns)
        rows: list[tuple[str, ...]] = []
        for r in records:
            row = tuple("" if k not in r else _value_for_csv(r[k]) for k in columns)
            rows.append(row)
            w.writerow(row)
        job_body: dict[str, Any] = {
            "object": object_name,
            "operation": operation,
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if operation == "upsert":
            job_body["externalIdFieldName"] = external_id_field
        base = f"{self.source.data_url}/jobs/ingest"
        job = self._send(
            "POST",
            base,
            data=json.dumps(job_body).encode(),
            content_type="application/json",
            idempotent=True,
            ok=(200, 201),
        ).json()
        job_id = job["id"]
        self.bulk_jobs += 1
        # The upload and the close may be sent again safely: nothing is processed before UploadComplete.
        self._send(
            "PUT",
            f"{base}/{job_id}/batches",
            data=buf.getvalue().encode(),
            content_type="text/csv",
            idempotent=True,
            ok=(200, 201),
        )
        self._send(
            "PATCH",
            f"{base}/{job_id}",
            data=json.dumps({"state": "UploadComplete"}).encode(),
            content_type="application/json",
            idempotent=True,
            ok=(200,),
        )
        deadline = time.monotonic() + self.bulk_timeout_seconds
        while True:
            info = self._send("GET", f"{base}/{job_id}", idempotent=True, ok=(200,)).json()
            state = info.get("state")
            if state == "JobComplete":
                break
            if state in ("Failed", "Aborted"):
                raise SalesforceRequestError(
                    f"Bulk ingest job {job_id} for {object_name} ended {state}: {info.get('errorMessage', '')}",
                    error_code="BULK_JOB_FAILED",
                )
            if time.monotonic() > deadline:
                raise SalesforceUnavailable(f"Bulk ingest job {job_id} did not finish in time")
            self._sleep(self.bulk_poll_seconds)
        by_row: dict[tuple[str, ...], list[WriteResult]] = defaultdict(list)
        for kind in ("successfulResults", "failedResults", "unprocessedrecords"):
            text = self._send("GET", f"{base}/{job_id}/{kind}", idempotent=True, ok=(200,)).content.decode(
                "utf-8"
            )
            reader = csv.reader(io.StringIO(text))
            head = next(reader, None)
            if not head:
                continue
            pos = {h: i for i, h in enumerate(head)}
            for line in reader:
                if not line:
                    continue
                key = tuple(line[pos[c]] if c in pos else "" for c in columns)
                if kind == "successfulResults":
                    res = WriteResult(
                        True,
                        line[pos["sf__Id"]] or None,
                        created=line[pos.get("sf__Created", -1)].lower() == "true"
                        if "sf__Created" in pos
                        else operation == "insert",
                    )
                elif kind == "failedResults":
                    res = WriteResult(
                        False,
                        (line[pos["sf__Id"]] or None) if "sf__Id" in pos else None,
                        errors=(line[pos["sf__Error"]],),
                    )
                else:
                    res = WriteResult(
                        False, None, errors=("UNPROCESSED: the bulk job did not process this row",)
                    )
                by_row[key].append(res)
        out = []
        for row in rows:
            # Salesforce writes "" for a "#N/A" cell in its results; match on that form as well.
            candidates = by_row.get(row) or by_row.get(tuple("" if v == "#N/A" else v for v in row))
            out.append(candidates.pop(0) if candidates else WriteResult(False, None, errors=("NO_RESULT",)))
        return out

    # --- files -------------------------------------------------------------------------------------

    def upload_file(
        self, object_name: str, body_field: str, values: dict[str, Any], data: bytes
    ) -> WriteResult:
        _check_name(object_name, "object")
        _check_name(body_field, "field")
        limit = CONTENT_VERSION_MAX if object_name == "ContentVersion" else OTHER_BODY_MAX
        if len(data) > limit:
            raise SalesforceRequestError(
                f"{object_name}.{body_field} body of {len(data)} bytes exceeds the {limit} bytes upload limit",
                error_code="FILE_TOO_LARGE",
            )
        boundary = f"orgvault-{uuid.uuid4().hex}"
        # the JSON part's name: entity_content for ContentVersion, entity_document for Document/Attachment
        entity_part = "entity_content" if object_name == "ContentVersion" else "entity_document"
        filename = str(values.get("PathOnClient") or values.get("Name") or values.get("Title") or "file")
        entity = json.dumps({k: v for k, v in values.items() if v is not None}).encode()
        body = b"".join(
            [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{entity_part}"\r\n'
                "Content-Type: application/json\r\n\r\n".encode(),
                entity,
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="{body_field}"; '
                f'filename="{filename.replace(chr(34), "")}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        url = f"{self.source.data_url}/sobjects/{object_name}"
        try:
            if self._multipart:
                try:
                    resp = self._send(
                        "POST",
                        url,
                        data=body,
                        content_type=f"multipart/form-data; boundary={boundary}",
                        idempotent=False,
                        ok=(200, 201),
                    )
                except SalesforceRequestError as exc:
                    if exc.status not in (400, 415) or len(data) > JSON_BODY_MAX:
                        raise
                    # Some endpoints (and the emulator) only take JSON: fall back to a base64 body.
                    log.info("multipart upload refused (%s); using a JSON base64 body", exc.error_code)
                    self._multipart = False
            if not self._multipart:
                if len(data) > JSON_BODY_MAX:
                    raise SalesforceRequestError(
                        f"{object_name} body of {len(data)} bytes is too large for a JSON upload",
                        error_code="FILE_TOO_LARGE",
                    )
                doc = {k: v for k, v in values.items() if v is not None}
                doc[body_field] = base64.b64encode(data).decode("ascii")
                resp = self._send(
                    "POST",
                    url,
                    data=json.dumps(doc).encode(),
                    content_type="application/json",
                    idempotent=False,
                    ok=(200, 201),
                )
        except SalesforceRequestError as exc:
            return WriteResult(False, None, errors=(str(exc),))
        item = resp.json()
        return WriteResult(
            bool(item.get("success", True)),
            item.get("id"),
            created=True,
            errors=tuple(str(e) for e in item.get("errors") or ()),
        )

    # --- transport ---------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        content_type: str = "",
        idempotent: bool,
        ok: Sequence[int],
    ) -> requests.Response:
        """One call through the source's session, token, budget and translation. 5xx and one
        expired session are retried; a dropped connection is retried only when ``idempotent``."""
        src = self.source
        attempt = 0
        relogged = False
        while True:
            src._ensure_login()
            src._check_budget()
            attempt += 1
            src.calls += 1
            headers = {"Authorization": f"Bearer {src._token}", "Accept": "application/json"}
            if content_type:
                headers["Content-Type"] = content_type
            try:
                resp = src._session.request(method, url, data=data, headers=headers, timeout=src.timeout)
                content = resp.content  # read the whole body now: a drop mid-body is a transport error
            except _TRANSPORT_ERRORS as exc:
                if not idempotent:
                    raise WriteMaybeApplied(
                        f"the connection dropped during {method} {_path(url)} ({type(exc).__name__}); "
                        "the write may have been applied"
                    ) from None
                if attempt >= src.max_attempts:
                    raise SalesforceUnavailable(
                        f"Salesforce could not be reached after {attempt} attempts ({type(exc).__name__})"
                    ) from None
                src._backoff(attempt)
                continue
            src._track(resp)
            if resp.status_code in ok:
                return resp
            try:
                body: Any = json.loads(content)
            except ValueError:
                body = content.decode("utf-8", "replace")
            code, message = _error_parts(body)
            if resp.status_code == 401 and not relogged:
                relogged = True
                src._token = None
                continue
            error = translate_error(resp.status_code, code, _scrub(message, src._secrets()))
            if isinstance(error, SalesforceUnavailable) and attempt < src.max_attempts:
                log.warning("Salesforce %s %s answered %s; retrying", method, _path(url), resp.status_code)
                src._backoff(attempt)
                continue
            raise error


def body_field(object_name: str) -> str | None:
    """The binary body field of a file-holding object (ContentVersion -> VersionData)."""
    return _BODY_FIELDS.get(object_name)
