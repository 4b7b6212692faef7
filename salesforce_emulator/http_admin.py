"""The admin API under ``/__emulator/`` — test and demo control, never a Salesforce path.

Every call needs ``Authorization: Bearer <token>`` with the admin token (by default the server's initial
access token, which stays valid here even after it expired as a Salesforce session) or any live session
token; otherwise ``401 INVALID_SESSION_ID``. Admin calls are not counted against the API allowance.

Endpoints (JSON in, JSON out):
- ``GET  /__emulator/clock`` → ``{"now"}``; ``POST /__emulator/clock`` ``{"advance": seconds}`` or
  ``{"set": iso}``
- ``GET|POST|DELETE /__emulator/faults`` (read / update knobs / clear); ``POST /__emulator/faults/rules``
- ``POST /__emulator/mutate`` → ``activity.mutate(org, **body)``;
  ``POST /__emulator/activity/{function}`` → any public ``activity`` function with ``**body``
- ``POST /__emulator/fields`` ``{"sobject", "name", "type", ...props}`` → ``Org.add_field``
- ``POST /__emulator/undelete|purge`` ``{"ids": [...]}``; ``POST /__emulator/merge``
  ``{"sobject", "master_id", "victim_ids"}``
- ``GET /__emulator/usage``; ``POST /__emulator/usage/reset`` ``{"total"?}``
- ``GET /__emulator/truth`` → record counts per object (``?include_deleted=true``);
  ``GET /__emulator/truth/{sobject}`` → every stored record of the object
"""

from __future__ import annotations

import base64
import hmac
import inspect
import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .auth import bearer_token
from .errors import SalesforceError
from .faults import FaultRule
from .http_rest import parse_sf_datetime
from .server import JSON_TYPE, Reply, Request, json_reply

if TYPE_CHECKING:
    from .server import EmulatorServer


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _json(value: Any, status: int = 200) -> Reply:
    body = json.dumps(value, ensure_ascii=False, default=_default).encode()
    return Reply(status, body, JSON_TYPE, {}, value)


class AdminApi:
    """Serves ``/__emulator/``."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.emu = emulator

    def _authorize(self, req: Request) -> None:
        token = bearer_token(req.header("Authorization"))
        if token and hmac.compare_digest(token.encode(), self.emu.admin_token.encode()):
            return
        if token and self.emu.sessions.is_known(token):
            return
        raise SalesforceError(401, "INVALID_SESSION_ID", "Admin API: missing or invalid token")

    def handle(self, req: Request) -> Reply:
        self._authorize(req)
        parts = [p for p in req.path.split("/") if p][1:]
        method = req.method
        org = self.emu.org
        body: Any = req.json() if req.body else {}
        head = parts[0] if parts else ""
        if not parts:
            return _json(
                {
                    "org_id": org.org_id,
                    "instance_url": self.emu.facts.instance_url,
                    "objects": org.object_names(),
                }
            )
        if head == "clock":
            if method == "POST":
                if "advance" in body:
                    org.clock.advance(float(body["advance"]))
                elif "set" in body:
                    org.clock.set(parse_sf_datetime(str(body["set"]), "set"))
                else:
                    raise SalesforceError(
                        400, "INVALID_INPUT", "clock: give 'advance' (seconds) or 'set' (ISO)"
                    )
            return _json({"now": org.clock.now().isoformat()})
        if head == "faults":
            faults = self.emu.faults
            if len(parts) == 2 and parts[1] == "rules" and method == "POST":
                rules = body if isinstance(body, list) else [body]
                for rule in rules:
                    faults.add_rule(FaultRule(**rule))
            elif method == "POST":
                try:
                    faults.update(**body)
                except (TypeError, ValueError) as exc:
                    raise SalesforceError(400, "INVALID_INPUT", str(exc)) from exc
            elif method == "DELETE":
                faults.clear()
            return _json(faults.as_dict())
        if head == "usage":
            if len(parts) == 2 and parts[1] == "reset" and method == "POST":
                self.emu.usage.reset(body.get("total"))
            return _json({"used": self.emu.usage.used, "total": self.emu.usage.total})
        if head in ("mutate", "activity"):
            from . import activity

            name = "mutate" if head == "mutate" else (parts[1] if len(parts) > 1 else "")
            fn = getattr(activity, name, None)
            if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != activity.__name__:
                raise SalesforceError(404, "NOT_FOUND", f"No activity function {name!r}")
            try:
                inspect.signature(fn).bind(org, **body)
            except TypeError as exc:
                raise SalesforceError(400, "INVALID_INPUT", f"{name}: {exc}") from exc
            return _json({"result": fn(org, **body)})
        if head == "fields" and method == "POST":
            props = {k: v for k, v in body.items() if k not in ("sobject", "name", "type")}
            try:
                org.add_field(body["sobject"], body["name"], body["type"], **props)
            except KeyError as exc:
                raise SalesforceError(400, "INVALID_INPUT", f"missing {exc}") from exc
            return _json({"ok": True}, 201)
        if head in ("undelete", "purge") and method == "POST":
            ids = body.get("ids") or ([body["id"]] if "id" in body else [])
            fn = org.undelete if head == "undelete" else org.purge
            results = []
            for record_id in ids:
                try:
                    fn(record_id)
                    results.append({"id": record_id, "success": True})
                except SalesforceError as exc:
                    results.append(
                        {
                            "id": record_id,
                            "success": False,
                            "errorCode": exc.error_code,
                            "message": exc.message,
                        }
                    )
            return _json(results)
        if head == "merge" and method == "POST":
            org.merge(body["sobject"], body["master_id"], list(body["victim_ids"]))
            return _json({"ok": True})
        if head == "truth" and method == "GET":
            include_deleted = (req.param("include_deleted") or "false").lower() == "true"
            if len(parts) == 1:
                counts = {}
                for name in org.object_names():
                    try:
                        counts[name] = sum(
                            1
                            for _ in org.true_records(
                                name, include_deleted=include_deleted, include_blobs=False
                            )
                        )
                    except SalesforceError:
                        continue  # not a data object (ChangeEvent, ...)
                return _json(counts)
            return _json(list(org.true_records(parts[1], include_deleted=include_deleted)))
        raise SalesforceError(404, "NOT_FOUND", f"Unknown admin resource {req.path}")


__all__ = ["AdminApi", "json_reply"]
