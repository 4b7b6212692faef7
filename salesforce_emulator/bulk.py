"""Bulk API 2.0 query and ingest jobs (``/services/data/vNN.N/jobs/query`` and ``/jobs/ingest``).

Contract:
- Query jobs are compiled at creation with ``Org.compile(..., for_bulk=True)``; its refusals become the
  create call's error. The create response is JSON whatever ``Accept`` says. State moves
  ``UploadComplete → InProgress → JobComplete`` as ``bulk_delay`` seconds pass (wall clock or org clock,
  see :class:`~.server.ServerOptions`), or to ``Failed`` when the ``bulk_fail`` fault is on.
- Results (``/results?locator=&maxRecords=``) stream from ``Org.fetch`` + ``Org.render_csv`` in slices:
  the whole result is never held in memory. Every page has a header row. ``Sforce-Locator`` is the
  literal ``null`` on the last page; ``Sforce-NumberOfRecords`` is the page's row count. gzip when the
  client accepts it. Asking before ``JobComplete`` is ``412 JOB_NOT_COMPLETE``. A page can be fetched
  again with the same locator.
- Ingest jobs take CSV batches while ``Open`` (``PUT .../batches`` → 201), process after
  ``UploadComplete`` (+ ``bulk_delay``), and report ``successfulResults`` / ``failedResults`` /
  ``unprocessedrecords`` CSVs. In ingest CSV an empty cell leaves the field as is; ``#N/A`` sets null.
- A job is reachable only through the API version it was created with; any other version is
  ``409 API_ERROR`` (status documented; errorCode our choice, see :func:`_check_version`).
- Only ``COMMA`` column delimiters are produced for query results; ``lineEnding`` is honoured by
  ``Org.render_csv``.
"""

from __future__ import annotations

import base64
import csv
import io
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .errors import SalesforceError
from .ids import IdFactory
from .server import Reply, Request, json_reply

if TYPE_CHECKING:
    from .server import EmulatorServer

STREAM_SLICE = 10000  # rows fetched and rendered per chunk of a results page
_DELIMS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
_INGEST_OPS = ("insert", "update", "upsert", "delete", "hardDelete")
_TERMINAL = ("JobComplete", "Failed", "Aborted")


def _sf_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def encode_locator(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    try:
        text = base64.urlsafe_b64decode(locator + "=" * (-len(locator) % 4)).decode()
        value = int(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid locator") from exc
    if value < 0:
        raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid locator")
    return value


@dataclass
class _Job:
    id: str
    kind: str  # "query" | "ingest"
    operation: str
    object: str
    api_version: str
    line_ending: str
    column_delimiter: str
    created: datetime
    started_wall: float
    state: str
    created_by: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    error_message: str | None = None
    # query
    soql: str = ""
    query: Any = None
    total: int | None = None
    afters: dict[int, str | None] = field(default_factory=dict)
    # ingest
    external_id_field: str | None = None
    uploads: list[bytes] = field(default_factory=list)
    upload_complete_wall: float | None = None
    upload_complete_org: datetime | None = None
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)
    processing_ms: int = 0


class BulkApi:
    """Bulk API 2.0 job registry and HTTP endpoints of one emulator."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emu = emulator
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._ids = IdFactory(seed=zlib.crc32(emulator.org.org_id.encode()) + 7)

    @property
    def org(self) -> Any:
        return self.emu.org

    def close(self) -> None:
        with self._lock:
            self._jobs.clear()

    # -- routing ------------------------------------------------------------------------------------
    def handle(self, req: Request, version: str, rest: str) -> Reply:
        parts = [unquote(p) for p in rest.split("/") if p][1:]  # drop "jobs"
        if not parts or parts[0] not in ("query", "ingest"):
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        kind, parts = parts[0], parts[1:]
        method = req.method
        if not parts:
            if method == "POST":
                return (
                    self._create_query(req, version) if kind == "query" else self._create_ingest(req, version)
                )
            if method == "GET":
                return self._list(kind)
            raise _not_allowed(method, "GET, POST")
        job = self._job(parts[0], kind)
        _check_version(job, version)
        if len(parts) == 1:
            if method == "GET":
                return json_reply(self._info(job))
            if method == "PATCH":
                return self._patch(req, job)
            if method == "DELETE":
                with self._lock:
                    self._jobs.pop(job.id, None)
                return Reply(204, b"", None)
            raise _not_allowed(method, "GET, PATCH, DELETE")
        sub = parts[1]
        if kind == "query" and sub == "results" and method == "GET":
            return self._results(req, job)
        if kind == "ingest" and sub == "batches" and method == "PUT":
            return self._upload(req, job)
        if (
            kind == "ingest"
            and method == "GET"
            and sub.lower() in ("successfulresults", "failedresults", "unprocessedrecords")
        ):
            return self._ingest_results(job, sub.lower())
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")

    def _job(self, job_id: str, kind: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.kind != kind:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def _new_job(
        self, kind: str, operation: str, obj: str, version: str, payload: dict[str, Any], state: str
    ) -> _Job:
        line_ending = str(payload.get("lineEnding") or "LF").upper()
        delimiter = str(payload.get("columnDelimiter") or "COMMA").upper()
        if line_ending not in ("LF", "CRLF"):
            raise SalesforceError(400, "INVALIDJOB", f"Invalid lineEnding: {line_ending}")
        if delimiter not in _DELIMS:
            raise SalesforceError(400, "INVALIDJOB", f"Invalid columnDelimiter: {delimiter}")
        return _Job(
            id=self._ids.new_id("750"),
            kind=kind,
            operation=operation,
            object=obj,
            api_version=version,
            line_ending=line_ending,
            column_delimiter=delimiter,
            created=self.org.clock.now(),
            started_wall=time.monotonic(),
            state=state,
            created_by=self.emu.user_id,
        )

    def _register(self, job: _Job) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def _list(self, kind: str) -> Reply:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.kind == kind]
        return json_reply(
            {"done": True, "records": [self._info(j, brief=True) for j in jobs], "nextRecordsUrl": None}
        )

    # -- state machine ------------------------------------------------------------------------------
    def _elapsed(self, wall_start: float, org_start: datetime) -> float:
        if self.emu.options.bulk_clock == "org":
            return (self.org.clock.now() - org_start).total_seconds()
        return time.monotonic() - wall_start

    def _advance(self, job: _Job) -> None:
        delay = self.emu.options.bulk_delay
        with job.lock:
            if job.state in _TERMINAL or job.state == "Open":
                return
            if job.kind == "query":
                elapsed = self._elapsed(job.started_wall, job.created)
            else:
                assert job.upload_complete_wall is not None and job.upload_complete_org is not None
                elapsed = self._elapsed(job.upload_complete_wall, job.upload_complete_org)
            if elapsed < delay:
                job.state = "InProgress" if elapsed >= delay / 2 else "UploadComplete"
                return
            started = time.monotonic()
            if self.emu.faults.bulk_fail:
                job.state = "Failed"
                job.error_message = "InternalServerError : the job failed (injected fault)"
                if job.kind == "ingest":
                    job.unprocessed = self._rows(job)
                return
            if job.kind == "query":
                total = self.org.count(job.query)
                limit = getattr(job.query, "limit", None)
                job.total = min(total, limit) if limit is not None else total
                job.afters = {0: None}
            else:
                self._process_ingest(job)
            job.processing_ms = int((time.monotonic() - started) * 1000)
            job.state = "JobComplete"

    def _info(self, job: _Job, *, brief: bool = False, advance: bool = True) -> dict[str, Any]:
        if advance:
            self._advance(job)
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": job.created_by,
            "createdDate": _sf_time(job.created),
            "systemModstamp": _sf_time(self.org.clock.now() if job.state in _TERMINAL else job.created),
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.api_version),
            "jobType": "V2Query" if job.kind == "query" else "V2Ingest",
            "lineEnding": job.line_ending,
            "columnDelimiter": job.column_delimiter,
        }
        if job.kind == "ingest":
            info["externalIdFieldName"] = job.external_id_field
            info["contentUrl"] = f"services/data/v{job.api_version}/jobs/ingest/{job.id}/batches"
        if brief:
            return info
        if job.kind == "query":
            info["numberRecordsProcessed"] = (job.total or 0) if job.state == "JobComplete" else 0
        else:
            info["numberRecordsProcessed"] = len(job.successful) + len(job.failed)
            info["numberRecordsFailed"] = len(job.failed)
            info["apexProcessingTime"] = 0
            info["apiActiveProcessingTime"] = job.processing_ms
        info["retries"] = 0
        info["totalProcessingTime"] = job.processing_ms
        if job.error_message:
            info["errorMessage"] = job.error_message
        if job.kind == "query":
            info["isPkChunkingSupported"] = True
        return info

    def _patch(self, req: Request, job: _Job) -> Reply:
        payload = req.json()
        state = payload.get("state") if isinstance(payload, dict) else None
        with job.lock:
            if state == "Aborted":
                if job.state in _TERMINAL:
                    raise SalesforceError(
                        400, "INVALIDJOBSTATE", f"Job {job.id} is in state {job.state} and cannot be aborted"
                    )
                if job.kind == "ingest" and job.state == "Open":
                    job.unprocessed = self._rows(job)
                job.state = "Aborted"
            elif state == "UploadComplete" and job.kind == "ingest":
                if job.state != "Open":
                    raise SalesforceError(400, "INVALIDJOBSTATE", f"Job {job.id} is not Open")
                if not job.uploads:
                    job.state = "Failed"
                    job.error_message = "No data was uploaded for this job"
                else:
                    job.state = "UploadComplete"
                    job.upload_complete_wall = time.monotonic()
                    job.upload_complete_org = self.org.clock.now()
            else:
                raise SalesforceError(400, "INVALIDJOBSTATE", f"Invalid state change: {state!r}")
        return json_reply(self._info(job, brief=True))

    # -- query jobs ---------------------------------------------------------------------------------
    def _create_query(self, req: Request, version: str) -> Reply:
        payload = req.json()
        if not isinstance(payload, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        operation = payload.get("operation", "query")
        if operation not in ("query", "queryAll"):
            raise SalesforceError(400, "INVALIDJOB", f"Invalid operation for a query job: {operation}")
        soql = payload.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise SalesforceError(400, "INVALIDJOB", "The query is required")
        compiled = self.org.compile(soql, include_deleted=operation == "queryAll", for_bulk=True)
        threshold = self.emu.faults.query_timeout_rows
        if threshold is not None and "where" not in soql.lower() and self.org.count(compiled) > threshold:
            raise SalesforceError(400, "QUERY_TIMEOUT", "Your query request was running for too long.")
        job = self._new_job("query", operation, compiled.object_name, version, payload, "UploadComplete")
        if job.column_delimiter != "COMMA":
            raise SalesforceError(400, "INVALIDJOB", "This emulator produces COMMA-delimited results only")
        job.soql, job.query = soql, compiled
        self.emu.usage.count_bulk_query_job()
        self._register(job)
        return json_reply(self._info(job, brief=True, advance=False))

    def _after_for(self, job: _Job, offset: int) -> str | None:
        """Keyset token at ``offset``: recorded by an earlier page, or walked to from the nearest one."""
        with job.lock:
            if offset in job.afters:
                return job.afters[offset]
            start = max(o for o in job.afters if o <= offset)
            after = job.afters[start]
        position = start
        while position < offset:
            page = self.org.fetch(job.query, after, min(STREAM_SLICE, offset - position))
            if not page.rows:
                break
            position += len(page.rows)
            after = page.next_after
            if after is None:
                break
        with job.lock:
            job.afters[offset] = after
        return after

    def _results(self, req: Request, job: _Job) -> Reply:
        self._advance(job)
        if job.state in ("Failed", "Aborted"):
            raise SalesforceError(400, "INVALIDJOBSTATE", f"Job {job.id} is in state {job.state}")
        if job.state != "JobComplete":
            raise SalesforceError(412, "JOB_NOT_COMPLETE", f"Job {job.id} is not complete yet")
        total = job.total or 0
        locator = req.param("locator")
        offset = decode_locator(locator) if locator and locator != "null" else 0
        if offset > total:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid locator")
        max_records_text = req.param("maxRecords")
        if max_records_text is not None:
            if not max_records_text.isdigit() or int(max_records_text) <= 0:
                raise SalesforceError(400, "INVALIDREQUEST", "maxRecords must be a positive integer")
            count = min(int(max_records_text), total - offset)
        else:
            count = total - offset
        end = offset + count
        headers = {
            "Sforce-Locator": encode_locator(end) if end < total else "null",
            "Sforce-NumberOfRecords": str(count),
        }
        start_after = self._after_for(job, offset)
        body: Iterator[bytes] = self._stream(job, offset, count, start_after)
        if "gzip" in (req.header("Accept-Encoding") or "").lower():
            headers["Content-Encoding"] = "gzip"
            body = _gzip(body)
        return Reply(200, body, "text/csv", headers)

    def _stream(self, job: _Job, offset: int, count: int, after: str | None) -> Iterator[bytes]:
        org, q = self.org, job.query
        header = True
        position, remaining = offset, count
        while remaining > 0:
            page = org.fetch(q, after, min(STREAM_SLICE, remaining))
            rows = page.rows
            if not rows:
                break
            position += len(rows)
            remaining -= len(rows)
            after = page.next_after
            with job.lock:
                job.afters[position] = after
            yield org.render_csv(q, rows, header=header, line_ending=job.line_ending)
            header = False
            if after is None:
                break
        if header:
            yield org.render_csv(q, [], header=True, line_ending=job.line_ending)

    # -- ingest jobs --------------------------------------------------------------------------------
    def _create_ingest(self, req: Request, version: str) -> Reply:
        payload = req.json()
        if not isinstance(payload, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        operation = payload.get("operation")
        if operation not in _INGEST_OPS:
            raise SalesforceError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        obj = payload.get("object")
        if not isinstance(obj, str) or not obj:
            raise SalesforceError(400, "INVALIDJOB", "The object is required")
        describe = self.org.describe(obj)  # NOT_FOUND for unknown objects
        ext = payload.get("externalIdFieldName")
        if operation == "upsert":
            names = {f["name"].lower(): f for f in describe["fields"]}
            if (
                not ext
                or ext.lower() not in names
                or not (names[ext.lower()].get("externalId") or ext.lower() == "id")
            ):
                raise SalesforceError(400, "INVALIDJOB", f"External ID field {ext!r} is not valid for {obj}")
        job = self._new_job("ingest", operation, describe.get("name", obj), version, payload, "Open")
        job.external_id_field = ext
        self._register(job)
        return json_reply(self._info(job, brief=True))

    def _upload(self, req: Request, job: _Job) -> Reply:
        with job.lock:
            if job.state != "Open":
                raise SalesforceError(409, "INVALIDJOBSTATE", f"Job {job.id} is not Open")
            if not req.body:
                raise SalesforceError(400, "INVALIDREQUEST", "The CSV data is empty")
            job.uploads.append(req.body)
        return Reply(201, b"", None)

    def _rows(self, job: _Job) -> list[list[str]]:
        delim = _DELIMS[job.column_delimiter]
        rows: list[list[str]] = []
        for upload in job.uploads:
            reader = csv.reader(io.StringIO(upload.decode("utf-8-sig"), newline=""), delimiter=delim)
            try:
                header = next(reader)
            except StopIteration:
                continue
            if not job.header:
                job.header = header
            elif header != job.header:
                raise SalesforceError(400, "INVALIDBATCH", "All uploads of a job must share one header row")
            rows.extend(row for row in reader if row)
        return rows

    def _process_ingest(self, job: _Job) -> None:
        org = self.org
        rows = self._rows(job)
        header = job.header
        lower = [h.lower() for h in header]
        types = {f["name"].lower(): f.get("type", "string") for f in org.describe(job.object)["fields"]}
        id_index = lower.index("id") if "id" in lower else None
        for row in rows:
            record_id = row[id_index] if id_index is not None and id_index < len(row) else ""
            try:
                values = {}
                for name, cell in zip(header, row, strict=False):
                    if cell == "" or name.lower() == "id":
                        continue
                    values[name] = (
                        None if cell == "#N/A" else _coerce(cell, types.get(name.lower(), "string"))
                    )
                created = False
                if job.operation == "insert":
                    record_id = org.create(job.object, values)
                    created = True
                elif job.operation == "update":
                    if not record_id:
                        raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call")
                    org.update(job.object, record_id, values)
                elif job.operation == "upsert":
                    ext = job.external_id_field or "Id"
                    key = next((c for n, c in zip(header, row, strict=False) if n.lower() == ext.lower()), "")
                    if not key:
                        raise SalesforceError(400, "MISSING_ARGUMENT", f"{ext} not specified")
                    values = {k: v for k, v in values.items() if k.lower() != ext.lower()}
                    record_id, created = org.upsert(job.object, ext, key, values)
                else:
                    if not record_id:
                        raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in a delete call")
                    org.delete(job.object, record_id)
                    if job.operation == "hardDelete":
                        org.purge(record_id)
                job.successful.append([record_id, "true" if created else "false", *row])
            except SalesforceError as exc:
                fields = ",".join(exc.fields)
                job.failed.append([record_id or "", f"{exc.error_code}:{exc.message}:{fields} --", *row])

    def _ingest_results(self, job: _Job, which: str) -> Reply:
        self._advance(job)
        with job.lock:
            header = job.header or (self._rows(job) and job.header) or []
            if which == "successfulresults":
                head, rows = ["sf__Id", "sf__Created", *header], job.successful
            elif which == "failedresults":
                head, rows = ["sf__Id", "sf__Error", *header], job.failed
            else:
                head, rows = list(header), job.unprocessed
            out = io.StringIO()
            writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(head)
            writer.writerows(rows)
        return Reply(200, out.getvalue().encode(), "text/csv")


def _coerce(cell: str, field_type: str) -> Any:
    try:
        if field_type == "boolean":
            return cell.strip().lower() in ("true", "1", "yes")
        if field_type in ("int", "long"):
            return int(cell)
        if field_type in ("double", "currency", "percent"):
            return float(cell)
    except ValueError as exc:
        raise SalesforceError(
            400, "INVALID_FIELD_VALUE", f"Invalid value for a {field_type} field: {cell!r}"
        ) from exc
    return cell


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    comp = zlib.compressobj(5, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = comp.compress(chunk)
        if out:
            yield out
    yield comp.flush()


def _check_version(job: _Job, version: str) -> None:
    """A job is only reachable through the API version it was created with: any other is ``409``.

    Salesforce documents the status ("409 ... Check that the API version is compatible with the resource
    you're requesting") but we could not verify the errorCode of the body; ``API_ERROR`` (a real
    Salesforce exception code) is our choice, in the usual ``[{"errorCode", "message"}]`` shape."""
    if float(version) != float(job.api_version):
        raise SalesforceError(
            409,
            "API_ERROR",
            f"Job {job.id} was created with API version {job.api_version} and cannot be accessed with "
            f"version {version}",
        )


def _not_allowed(method: str, allowed: str) -> SalesforceError:
    return SalesforceError(
        405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}"
    )
