"""The API resolver: Powertools ``APIGatewayRestResolver(enable_validation=True)`` with every route.

Contract:
- :class:`OrgVaultApi.handle` takes an API Gateway REST proxy event (from API Gateway, or built by
  ``orgvault serve``) and returns the proxy response. Before routing it refuses bodies over
  ``max_body_bytes`` (413) and anonymous callers (401, on every path including the Swagger UI);
  each route then checks the caller's role in the org (403) before touching data.
- Errors become ``{"error", "message", "status"}`` with the status from
  :data:`orgvault.api.errors.STATUS_TABLE`; request validation failures are 422 with ``detail``.
  Nothing else (stack traces, exception text of non-orgvault errors) reaches a response.
- Every restore and every decrypting read (records, record, history, diff, objects, verify, restore
  plans/status/results — the journal is encrypted) writes an audit line with the caller's identity (:mod:`orgvault.api.audit`), also when refused.
- Requests are handled one at a time per instance (Powertools keeps the current event per class).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer, Server
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from orgvault.api import models as m
from orgvault.api.audit import AuditLog
from orgvault.api.authz import Principal, Role, principal_from_event, require
from orgvault.api.errors import (
    RETRY_AFTER_SECONDS,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    status_for,
)
from orgvault.api.jobs import BackupLauncher, InlineRunner, RestoreLauncher, TaskRunner
from orgvault.api.restores import RestoreDesk, WriterFactory, make_request
from orgvault.errors import OrgVaultError

log = logging.getLogger(__name__)

API_TITLE = "orgvault API"
API_VERSION = "1.0.0"
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

ORG = Annotated[str, Path(pattern=m.NAME, description="connected org name")]
LIMIT = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
TOKEN = Annotated[str | None, Query(max_length=200, description="next_token of the previous page")]

ERRORS: dict[int, Any] = {
    code: {"description": desc, "content": {"application/json": {"model": m.ErrorOut}}}
    for code, desc in {
        400: "Bad request",
        401: "Not signed in",
        403: "Not allowed for this org or role",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Body too large",
        429: "Salesforce API allowance used up",
        500: "Internal error (reference id in the message)",
        502: "Salesforce refused the login",
        503: "A backing service is unavailable; retry later",
    }.items()
}


def ok(model: type[Any], status: int = 200, description: str = "OK") -> dict[int, Any]:
    """The documented responses of a route: its success body plus every error status."""
    return {status: {"description": description, "content": {"application/json": {"model": model}}}, **ERRORS}


@dataclass
class ApiContext:
    """What the routes need: the wired App (``orgvault.bootstrap.App``), how to start work, the audit log."""

    app: Any
    launcher: BackupLauncher
    runner: TaskRunner = field(default_factory=InlineRunner)
    audit: AuditLog = field(default_factory=AuditLog)
    iam_principals: Mapping[str, Sequence[str]] = field(default_factory=dict)
    max_body_bytes: int = MAX_BODY_BYTES
    writer_factory: WriterFactory | None = None
    servers: Sequence[str] = ()
    restore_launcher: RestoreLauncher | None = None  # AWS: approved restores run in the restore workflow


_RESOLVE_LOCK = threading.Lock()


# --- helpers ---------------------------------------------------------------------------------------


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        offset = json.loads(raw)["o"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadRequest("next_token is not a token this API returned; start again without it") from None
    if not isinstance(offset, int) or offset < 0:
        raise BadRequest("next_token is not a token this API returned; start again without it")
    return offset


def page(items: Sequence[Any], token: str | None, limit: int) -> tuple[list[Any], str | None]:
    start = decode_token(token)
    chunk = list(items[start : start + limit])
    return chunk, (encode_token(start + limit) if start + limit < len(items) else None)


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def _error_response(status: int, error: str, message: str, **extra: Any) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS[status])} if status in RETRY_AFTER_SECONDS else None
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        headers=headers,
        body={"error": error, "message": message, "status": status, **extra},
    )


def _json(v: Any) -> Any:
    """Record values as JSON (tuples → lists)."""
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json(x) for x in v]
    if isinstance(v, datetime):
        return v.isoformat()
    return v


# --- the API ---------------------------------------------------------------------------------------


class OrgVaultApi:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.desk = RestoreDesk(ctx.app, ctx.writer_factory)
        self.resolver = APIGatewayRestResolver(enable_validation=True, strip_prefixes=["/iam"])
        self._routes()
        self.resolver.enable_swagger(
            path="/v1/swagger",
            title=API_TITLE,
            version=API_VERSION,
            security_schemes=SECURITY_SCHEMES,
            security=SECURITY,
        )

    # --- entry -------------------------------------------------------------------------------------

    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Resolve one proxy event into a proxy response (see the module contract)."""
        body = event.get("body") or ""
        size = len(body.encode() if isinstance(body, str) else body)
        if event.get("isBase64Encoded"):
            size = size * 3 // 4
        if size > self.ctx.max_body_bytes:
            return self._early(
                PayloadTooLarge(
                    f"the request body is {size} bytes; the limit is {self.ctx.max_body_bytes} bytes"
                )
            )
        if event.get("isBase64Encoded") and body:
            try:
                base64.b64decode(body, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                return self._early(BadRequest("the request body must be UTF-8 JSON"))
        principal = principal_from_event(event, self.ctx.iam_principals)
        if principal is None:
            return self._early(
                Unauthenticated("sign in first: send a bearer token (Authorization: Bearer ...)")
            )
        with _RESOLVE_LOCK:  # Powertools keeps the current event on the class: one request at a time
            self.resolver.append_context(principal=principal)
            return self.resolver.resolve(dict(event), context)

    def _early(self, exc: OrgVaultError) -> dict[str, Any]:
        status = status_for(exc)
        headers = {"Content-Type": "application/json"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="orgvault"'
        return {
            "statusCode": status,
            "headers": headers,
            "multiValueHeaders": {},
            "isBase64Encoded": False,
            "body": json.dumps({"error": type(exc).__name__, "message": str(exc), "status": status}),
        }

    # --- per-request helpers -----------------------------------------------------------------------

    def principal(self) -> Principal | None:
        return self.resolver.context.get("principal")

    def allow(self, org: str, role: Role, action: str | None = None, **details: Any) -> Principal:
        """Require ``role`` on ``org``; a refused decrypting read/restore is audited too."""
        try:
            return require(self.principal(), org, role)
        except OrgVaultError as exc:
            if action:
                self.ctx.audit.record(
                    action, self.principal(), org, "denied", error=type(exc).__name__, **details
                )
            raise

    def audited(
        self, action: str, org: str, principal: Principal, fn: Callable[[], Any], **details: Any
    ) -> Any:
        """Run ``fn`` and write the audit line (outcome ok, or error with the error class)."""
        rid = self.resolver.current_event.request_context.request_id
        try:
            result = fn()
        except Exception as exc:
            self.ctx.audit.record(
                action, principal, org, "error", error=type(exc).__name__, request_id=rid, **details
            )
            raise
        extra = result[1] if isinstance(result, tuple) else {}
        self.ctx.audit.record(action, principal, org, "ok", request_id=rid, **{**details, **extra})
        return result[0] if isinstance(result, tuple) else result

    def snapshots(self) -> Any:
        from orgvault.services.browse import Snapshots

        return Snapshots(self.ctx.app.catalog, self.ctx.app.vault)

    def key_ref(self, org: str) -> str:
        return self.ctx.app.catalog.get_org(org).key_ref

    # --- routes ------------------------------------------------------------------------------------

    def _routes(self) -> None:  # noqa: C901 - one place listing every route
        r = self.resolver
        api = self
        app = self.ctx.app

        @r.exception_handler(RequestValidationError)
        def on_validation(exc: RequestValidationError) -> Response:
            detail: list[dict[str, Any]] = [
                {
                    "loc": [str(x) for x in e.get("loc", ())],
                    "msg": str(e.get("msg", "")),
                    "type": str(e.get("type", "")),
                }
                for e in exc.errors()
            ]
            loc: list[str] = detail[0]["loc"] if detail else []
            msg: str = detail[0]["msg"] if detail else "invalid request"
            where = ".".join(loc[:3])
            return _error_response(422, "ValidationError", f"{where}: {msg}" if where else msg, detail=detail)

        @r.exception_handler(OrgVaultError)
        def on_orgvault(exc: OrgVaultError) -> Response:
            status = status_for(exc)
            if status >= 500:
                ref = secrets.token_hex(6)
                log.error("request failed [%s]: %s: %s", ref, type(exc).__name__, exc)
                return _error_response(status, type(exc).__name__, f"{exc} (reference {ref})")
            return _error_response(status, type(exc).__name__, str(exc))

        @r.exception_handler(Exception)
        def on_unexpected(exc: Exception) -> Response:
            ref = secrets.token_hex(6)
            log.exception("unexpected error [%s]", ref)
            return _error_response(
                500, "InternalError", f"internal error; reference {ref} is in the server log"
            )

        @r.not_found
        def on_not_found(exc: Exception) -> Response:
            return _error_response(404, "NotFound", "no such route; see /v1/swagger for the API")

        # --- orgs ---------------------------------------------------------------------------------
        @r.get("/v1/orgs", summary="orgs the caller may see", responses=ok(m.OrgList), tags=["orgs"])
        def list_orgs(limit: LIMIT = DEFAULT_LIMIT, next_token: TOKEN = None) -> m.OrgList:
            who = api.principal()
            assert who is not None
            orgs = [o for o in app.catalog.list_orgs() if who.role_in(o.name) is not None]
            items, nxt = page(sorted(orgs, key=lambda o: o.name), next_token, limit)
            return m.OrgList(items=[api._org_out(o, who) for o in items], next_token=nxt)

        @r.get("/v1/orgs/<org>", summary="one org", responses=ok(m.OrgOut), tags=["orgs"])
        def get_org(org: ORG) -> m.OrgOut:
            who = api.allow(org, Role.VIEWER)
            return api._org_out(app.catalog.get_org(org), who)

        # --- runs ---------------------------------------------------------------------------------
        @r.post(
            "/v1/orgs/<org>/runs",
            summary="start an on-demand backup",
            responses=ok(m.RunStarted, 202, "Accepted"),
            tags=["runs"],
        )
        def start_run(org: ORG, body: Annotated[m.RunCreate, Body()]) -> Response[m.RunStarted]:
            who = api.allow(org, Role.OPERATOR)
            app.catalog.get_org(org)
            started = api.ctx.launcher.start_backup(org, full=body.full)
            api.ctx.audit.record("runs.start", who, org, run_id=started.run_id, full=body.full)
            return Response(
                202,
                content_types.APPLICATION_JSON,
                m.RunStarted(
                    org=org, run_id=started.run_id, execution_id=started.execution_id, status=started.status
                ),
            )

        @r.get(
            "/v1/orgs/<org>/runs", summary="backup runs, newest first", responses=ok(m.RunList), tags=["runs"]
        )
        def list_runs(org: ORG, limit: LIMIT = DEFAULT_LIMIT, next_token: TOKEN = None) -> m.RunList:
            api.allow(org, Role.VIEWER)
            app.catalog.get_org(org)
            items, nxt = page(list(reversed(app.catalog.list_runs(org))), next_token, limit)
            return m.RunList(items=[_run_out(x) for x in items], next_token=nxt)

        @r.get(
            "/v1/orgs/<org>/runs/<run_id>", summary="one run's status", responses=ok(m.RunOut), tags=["runs"]
        )
        def get_run(org: ORG, run_id: Annotated[str, Path(pattern=m.RUN_ID)]) -> m.RunOut:
            api.allow(org, Role.VIEWER)
            app.catalog.get_org(org)
            return _run_out(app.catalog.get_run(org, run_id))

        # --- snapshots ------------------------------------------------------------------------------
        @r.get(
            "/v1/orgs/<org>/snapshots",
            summary="committed snapshots, newest first",
            responses=ok(m.SnapshotList),
            tags=["snapshots"],
        )
        def list_snapshots(
            org: ORG, limit: LIMIT = DEFAULT_LIMIT, next_token: TOKEN = None
        ) -> m.SnapshotList:
            api.allow(org, Role.VIEWER)
            app.catalog.get_org(org)
            items, nxt = page(list(reversed(app.catalog.list_snapshots(org))), next_token, limit)
            return m.SnapshotList(items=[_snap_out(s) for s in items], next_token=nxt)

        @r.get(
            "/v1/orgs/<org>/snapshots/<snapshot_id>",
            summary="one snapshot",
            responses=ok(m.SnapshotOut),
            tags=["snapshots"],
        )
        def get_snapshot(org: ORG, snapshot_id: Annotated[str, Path(pattern=m.RUN_ID)]) -> m.SnapshotOut:
            api.allow(org, Role.VIEWER)
            app.catalog.get_org(org)
            return _snap_out(app.catalog.get_snapshot(org, snapshot_id))

        @r.get(
            "/v1/orgs/<org>/snapshots/<snapshot_id>/objects",
            summary="objects in a snapshot",
            responses=ok(m.ObjectList),
            tags=["snapshots"],
        )
        def list_objects(
            org: ORG,
            snapshot_id: Annotated[str, Path(pattern=m.RUN_ID)],
            limit: LIMIT = DEFAULT_LIMIT,
            next_token: TOKEN = None,
        ) -> m.ObjectList:
            who = api.allow(org, Role.VIEWER, "objects.list", snapshot_id=snapshot_id)

            def run() -> Any:
                snaps = api.snapshots()
                manifest = snaps.manifest(app.catalog.get_snapshot(org, snapshot_id))
                entries = [manifest.objects[k] for k in sorted(manifest.objects)]
                items, nxt = page(entries, next_token, limit)
                return m.ObjectList(
                    snapshot_id=snapshot_id,
                    next_token=nxt,
                    items=[
                        m.ObjectOut(
                            name=e.name,
                            records=e.records,
                            fields=[f for f, _t in e.fields],
                            watermark=e.watermark,
                            layers=len(e.layers),
                        )
                        for e in items
                    ],
                )

            return api.audited("objects.list", org, who, run, snapshot_id=snapshot_id)

        # --- records --------------------------------------------------------------------------------
        @r.get(
            "/v1/orgs/<org>/objects/<object_name>/records",
            summary="browse records at a snapshot or time",
            responses=ok(m.RecordPageOut),
            tags=["records"],
        )
        def browse_records(
            org: ORG,
            object_name: Annotated[str, Path(pattern=m.OBJECT)],
            snapshot_id: Annotated[str | None, Query(pattern=m.RUN_ID)] = None,
            at: Annotated[str | None, Query(max_length=40, description="ISO 8601 time")] = None,
            where: Annotated[
                str | None, Query(max_length=2000, description="FIELD OP VALUE [and ...]")
            ] = None,
            fields: Annotated[str | None, Query(max_length=4000, description="comma-separated")] = None,
            limit: LIMIT = DEFAULT_LIMIT,
            next_token: TOKEN = None,
        ) -> m.RecordPageOut:
            details = {"object": object_name, "snapshot_id": snapshot_id, "at": at, "where": where}
            who = api.allow(org, Role.VIEWER, "records.browse", **details)

            def run() -> Any:
                from orgvault.services.browse import browse

                if snapshot_id and at:
                    raise BadRequest("give snapshot_id or at, not both")
                snaps = api.snapshots()
                key_ref = api.key_ref(org)
                snap = snaps.resolve(org, snapshot_id, at)
                api._entry(snaps, snaps.manifest(snap), object_name)
                names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
                start = decode_token(next_token)
                res = browse(
                    snaps,
                    org,
                    object_name,
                    snapshot_id=snap.snapshot_id,
                    where=where,
                    fields=names,
                    key_ref=key_ref,
                )
                got = list(islice(res.records, start, start + limit + 1))
                nxt = encode_token(start + limit) if len(got) > limit else None
                out = m.RecordPageOut(
                    snapshot_id=snap.snapshot_id,
                    object=res.object_name,
                    items=[_json(x) for x in got[:limit]],
                    next_token=nxt,
                )
                return out, {"count": len(out.items)}

            return api.audited("records.browse", org, who, run, **details)

        @r.get(
            "/v1/orgs/<org>/objects/<object_name>/records/<record_id>",
            summary="one record at a time",
            responses=ok(m.RecordOut),
            tags=["records"],
        )
        def get_record(
            org: ORG,
            object_name: Annotated[str, Path(pattern=m.OBJECT)],
            record_id: Annotated[str, Path(pattern=m.SF_ID)],
            snapshot_id: Annotated[str | None, Query(pattern=m.RUN_ID)] = None,
            at: Annotated[str | None, Query(max_length=40, description="ISO 8601 time")] = None,
        ) -> m.RecordOut:
            details = {"object": object_name, "record_id": record_id, "snapshot_id": snapshot_id, "at": at}
            who = api.allow(org, Role.VIEWER, "records.get", **details)

            def run() -> Any:
                if snapshot_id and at:
                    raise BadRequest("give snapshot_id or at, not both")
                snaps = api.snapshots()
                snap = snaps.resolve(org, snapshot_id, at)
                manifest = snaps.manifest(snap)
                entry = api._entry(snaps, manifest, object_name)
                found = snaps.lookup(org, api.key_ref(org), manifest, entry.name, record_id)
                state = {"live": "present"}.get(found.state, found.state)
                return m.RecordOut(
                    snapshot_id=snap.snapshot_id,
                    object=entry.name,
                    record_id=record_id,
                    state=state,
                    record=_json(found.record) if found.record else None,
                )

            return api.audited("records.get", org, who, run, **details)

        @r.get(
            "/v1/orgs/<org>/records/<record_id>/history",
            summary="every version of a record",
            responses=ok(m.HistoryOut),
            tags=["records"],
        )
        def record_history(
            org: ORG,
            record_id: Annotated[str, Path(pattern=m.SF_ID)],
            object_name: Annotated[str | None, Query(alias="object", pattern=m.OBJECT)] = None,
        ) -> m.HistoryOut:
            details = {"record_id": record_id, "object": object_name}
            who = api.allow(org, Role.VIEWER, "records.history", **details)

            def run() -> Any:
                from orgvault.services.history import record_history as history

                h = history(
                    api.snapshots(), org, record_id, object_name=object_name, key_ref=api.key_ref(org)
                )
                return m.HistoryOut(
                    org=org,
                    object=h.object_name,
                    record_id=h.record_id,
                    snapshots_searched=h.snapshots_searched,
                    versions=[
                        m.VersionOut(
                            snapshot_id=v.snapshot_id,
                            until_snapshot_id=v.until_snapshot_id,
                            created_at=v.created_at.isoformat(),
                            state=v.state,
                            record=_json(v.record) if v.record else None,
                            changes={k: _json(list(c)) for k, c in v.changes.items()},
                        )
                        for v in h.versions
                    ],
                )

            return api.audited("records.history", org, who, run, **details)

        # --- diff -----------------------------------------------------------------------------------
        @r.get(
            "/v1/orgs/<org>/diff",
            summary="records added, deleted and changed between two snapshots",
            responses=ok(m.DiffPageOut),
            tags=["diff"],
        )
        def diff(
            org: ORG,
            older: Annotated[str, Query(pattern=m.RUN_ID)],
            newer: Annotated[str, Query(pattern=m.RUN_ID)],
            object_name: Annotated[str | None, Query(alias="object", pattern=m.OBJECT)] = None,
            limit: LIMIT = DEFAULT_LIMIT,
            next_token: TOKEN = None,
        ) -> m.DiffPageOut:
            details = {"older": older, "newer": newer, "object": object_name}
            who = api.allow(org, Role.VIEWER, "diff", **details)

            def run() -> Any:
                from orgvault.services.diff import diff_snapshots

                d = diff_snapshots(api.snapshots(), org, older, newer, object_name, key_ref=api.key_ref(org))
                entries: list[m.DiffEntry] = []
                counts = []
                for o in d.objects:
                    if o.empty:
                        continue
                    counts.append(
                        m.DiffObjectCounts(
                            object=o.object_name,
                            added=len(o.added),
                            deleted=len(o.deleted),
                            changed=len(o.changed),
                            note=o.note,
                        )
                    )
                    entries += [
                        m.DiffEntry(
                            object=o.object_name, change="added", record_id=str(x.get("Id")), record=_json(x)
                        )
                        for x in o.added
                    ]
                    entries += [
                        m.DiffEntry(
                            object=o.object_name,
                            change="deleted",
                            record_id=str(x.get("Id")),
                            record=_json(x),
                        )
                        for x in o.deleted
                    ]
                    entries += [
                        m.DiffEntry(
                            object=o.object_name,
                            change="changed",
                            record_id=rid,
                            changes={k: _json(list(v)) for k, v in ch.items()},
                        )
                        for rid, ch in o.changed
                    ]
                items, nxt = page(entries, next_token, limit)
                return m.DiffPageOut(
                    org=org,
                    older=d.older.snapshot_id,
                    newer=d.newer.snapshot_id,
                    objects=counts,
                    items=items,
                    next_token=nxt,
                )

            return api.audited("diff", org, who, run, **details)

        # --- restores -------------------------------------------------------------------------------
        @r.post(
            "/v1/orgs/<org>/restores",
            summary="plan a restore (dry run); it runs once approved",
            responses=ok(m.RestoreOut, 201, "Created"),
            tags=["restores"],
        )
        def create_restore(org: ORG, body: Annotated[m.RestoreCreate, Body()]) -> Response[m.RestoreOut]:
            details = {
                "object": body.object,
                "mode": body.mode,
                "snapshot_id": body.snapshot_id,
                "target": body.target,
                "dry_run": True,
            }
            who = api.allow(org, Role.OPERATOR, "restores.plan", **details)
            if body.target and body.target != org:
                api.allow(body.target, Role.OPERATOR, "restores.plan", **details)
            if body.snapshot_id and body.at:
                raise BadRequest("give snapshot_id or at, not both")
            if body.mode == "upsert" and not body.external_id_field:
                raise BadRequest("mode upsert needs external_id_field")

            def run() -> Any:
                view = api.desk.plan(make_request(org, body), who.name)
                return view, {"restore_id": view.restore_id, "count": view.planned_total}

            view = api.audited("restores.plan", org, who, run, **details)
            return Response(201, content_types.APPLICATION_JSON, _restore_out(view))

        @r.get(
            "/v1/orgs/<org>/restores",
            summary="restores of an org, newest first",
            responses=ok(m.RestoreList),
            tags=["restores"],
        )
        def list_restores(org: ORG, limit: LIMIT = DEFAULT_LIMIT, next_token: TOKEN = None) -> m.RestoreList:
            who = api.allow(org, Role.VIEWER, "restores.list")

            def run() -> Any:
                app.catalog.get_org(org)
                ids, nxt = page(api.desk.list_ids(org), next_token, limit)
                out = m.RestoreList(
                    items=[_restore_out(api.desk.get(org, i), plan=False) for i in ids], next_token=nxt
                )
                return out, {"count": len(out.items)}

            return api.audited("restores.list", org, who, run)

        @r.get(
            "/v1/orgs/<org>/restores/<restore_id>",
            summary="a restore's status and plan",
            responses=ok(m.RestoreOut),
            tags=["restores"],
        )
        def get_restore(org: ORG, restore_id: Annotated[str, Path(pattern=m.RUN_ID)]) -> m.RestoreOut:
            who = api.allow(org, Role.VIEWER, "restores.get", restore_id=restore_id)

            def run() -> Any:
                app.catalog.get_org(org)
                return _restore_out(api.desk.get(org, restore_id))

            return api.audited("restores.get", org, who, run, restore_id=restore_id)

        @r.post(
            "/v1/orgs/<org>/restores/<restore_id>/approve",
            summary="approve a planned restore: it runs",
            responses=ok(m.RestoreOut, 202, "Accepted"),
            tags=["restores"],
        )
        def approve_restore(
            org: ORG, restore_id: Annotated[str, Path(pattern=m.RUN_ID)]
        ) -> Response[m.RestoreOut]:
            details = {"restore_id": restore_id}
            who = api.allow(org, Role.OPERATOR, "restores.approve", **details)
            app.catalog.get_org(org)
            target = api.desk.get(org, restore_id).request.get("target")
            if target and target != org:
                api.allow(target, Role.OPERATOR, "restores.approve", **details)

            def submit(name: str, fn: Callable[[], Any]) -> None:
                if api.ctx.restore_launcher is not None:
                    execution = api.ctx.restore_launcher.start_restore(org, restore_id)
                    api.ctx.audit.record(
                        "restores.run",
                        who,
                        org,
                        "started",
                        restore_id=restore_id,
                        status="starting",
                        run_id=execution,
                    )
                    return

                def run_and_audit() -> Any:
                    try:
                        report = fn()
                    except Exception as exc:
                        api.ctx.audit.record(
                            "restores.run", who, org, "error", restore_id=restore_id, error=type(exc).__name__
                        )
                        raise
                    api.ctx.audit.record(
                        "restores.run",
                        who,
                        org,
                        "ok",
                        restore_id=restore_id,
                        status=str(report.status),
                        count=len(report.results),
                    )
                    return report

                api.ctx.runner.submit(name, run_and_audit)

            def run() -> Any:
                view = api.desk.approve(org, restore_id, who.name, submit)
                return view, {"status": view.status}

            view = api.audited("restores.approve", org, who, run, **details)
            return Response(202, content_types.APPLICATION_JSON, _restore_out(view))

        @r.get(
            "/v1/orgs/<org>/restores/<restore_id>/results",
            summary="per-record results of a restore",
            responses=ok(m.RestoreResultPage),
            tags=["restores"],
        )
        def restore_results(
            org: ORG,
            restore_id: Annotated[str, Path(pattern=m.RUN_ID)],
            limit: LIMIT = DEFAULT_LIMIT,
            next_token: TOKEN = None,
        ) -> m.RestoreResultPage:
            who = api.allow(org, Role.VIEWER, "restores.results", restore_id=restore_id)

            def run() -> Any:
                app.catalog.get_org(org)
                view = api.desk.get(org, restore_id)
                items, nxt = page(view.results, next_token, limit)
                return m.RestoreResultPage(
                    restore_id=restore_id,
                    status=view.status,
                    next_token=nxt,
                    items=[
                        m.RestoreResultOut(
                            operation=str(x.get("operation")),
                            source_id=str(x.get("source_id")),
                            success=bool(x.get("success")),
                            target_id=x.get("id"),
                            errors=[str(e) for e in x.get("errors") or []],
                        )
                        for x in items
                    ],
                )

            return api.audited("restores.results", org, who, run, restore_id=restore_id)

        # --- verify ---------------------------------------------------------------------------------
        @r.post(
            "/v1/orgs/<org>/verify",
            summary="re-read and authenticate a snapshot",
            responses=ok(m.VerifyOut),
            tags=["verify"],
        )
        def verify(org: ORG, body: Annotated[m.VerifyCreate, Body()]) -> m.VerifyOut:
            details = {"snapshot_id": body.snapshot_id}
            who = api.allow(org, Role.OPERATOR, "verify", **details)

            def run() -> Any:
                from orgvault.services.verify import verify_snapshot

                app.catalog.get_org(org)
                rep = verify_snapshot(
                    app.catalog, app.vault, org, body.snapshot_id, check_files=body.check_files
                )
                j = rep.to_json()
                out = m.VerifyOut(
                    **{
                        **j,
                        "problems": [
                            m.VerifyProblemOut(
                                kind=p["kind"],
                                object=p["object"],
                                seq=p["seq"],
                                key=p["key"],
                                detail=str(p["detail"] or ""),
                            )
                            for p in j["problems"]
                        ],
                    }
                )
                return out, {"ok": out.ok, "snapshot_id": out.snapshot_id}

            return api.audited("verify", org, who, run, **details)

    # --- shaping -------------------------------------------------------------------------------------

    def _org_out(self, o: Any, who: Principal) -> m.OrgOut:
        head = self.ctx.app.catalog.head_snapshot(o.name)
        return m.OrgOut(
            name=o.name,
            instance_url=o.instance_url,
            auth_method=str(o.auth_method),
            salesforce_org_id=o.salesforce_org_id,
            api_version=o.api_version,
            head_snapshot_id=head.snapshot_id if head else None,
            role=str(who.role_in(o.name)),
        )

    @staticmethod
    def _entry(snaps: Any, manifest: Any, object_name: str) -> Any:
        for name, e in manifest.objects.items():
            if name.lower() == object_name.lower():
                return e
        raise NotFound(f"snapshot {manifest.snapshot_id} has no object {object_name!r}")


def _run_out(x: Any) -> m.RunOut:
    return m.RunOut(
        org=x.org,
        run_id=x.run_id,
        kind=str(x.kind),
        status=str(x.status),
        started_at=x.started_at.isoformat(),
        finished_at=_iso(x.finished_at),
        parent_snapshot_id=x.parent_snapshot_id,
        message=x.message,
        stats=_json(dict(x.stats)),
    )


def _snap_out(s: Any) -> m.SnapshotOut:
    return m.SnapshotOut(
        org=s.org,
        snapshot_id=s.snapshot_id,
        created_at=s.created_at.isoformat(),
        kind=str(s.kind),
        parent_id=s.parent_id,
        salesforce_org_id=s.salesforce_org_id,
        objects=s.objects,
        records=s.records,
        files=s.files,
        stored_bytes=s.stored_bytes,
    )


def _restore_out(v: Any, plan: bool = True) -> m.RestoreOut:
    req = v.request
    return m.RestoreOut(
        org=v.org,
        restore_id=v.restore_id,
        status=v.status,
        object=str(req.get("object_name") or ""),
        mode=str(req.get("mode") or ""),
        snapshot_id=str(req.get("snapshot_id") or ""),
        target=str(req.get("target") or v.org),
        requested_by=v.requested_by,
        approved_by=v.approved_by,
        message=v.message,
        counts=v.counts,
        planned_total=v.planned_total,
        planned=[m.PlannedWriteOut(**_json(p)) for p in v.planned] if plan else [],
    )


SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": HTTPBearer(description="Cognito ID/access token, or a local token of `orgvault serve`"),
    "sigv4": APIKey.model_validate(
        {
            "name": "Authorization",
            "in": APIKeyIn.header.value,
            "description": "AWS SigV4 (IAM auth, machine clients; under the /iam prefix)",
        }
    ),
}
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"sigv4": []}]


def build_api(ctx: ApiContext) -> OrgVaultApi:
    return OrgVaultApi(ctx)


def openapi_document(servers: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes (no App needed: routes are only declared)."""
    api = OrgVaultApi(ApiContext(app=None, launcher=None))  # type: ignore[arg-type]
    schema = api.resolver.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description="Browse, diff and restore Salesforce backups. Every route needs a signed-in caller; roles "
        "per org come from groups `org:<name>:viewer|operator|admin` (or `admin` for all orgs).",
        servers=[Server(url=u) for u in servers] or None,
        security_schemes=SECURITY_SCHEMES,
        security=SECURITY,
    )
    return json.loads(schema)
