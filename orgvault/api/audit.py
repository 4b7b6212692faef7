"""The audit log: one structured JSON line for every restore and every decrypting read.

Contract: :meth:`AuditLog.record` writes one line to the ``orgvault.audit`` logger (in Lambda, stdout →
CloudWatch Logs) with the caller's identity (subject, name, kind), the action, the org, the outcome
and small non-secret details (object, snapshot, ids, counts). Only whitelisted scalar details are
kept; record values, credentials and tokens are never written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from orgvault.api.authz import Principal

AUDIT_LOGGER = "orgvault.audit"
# Details the audit line may carry: identifiers and counts, never data or secrets.
ALLOWED_DETAILS = frozenset(
    {
        "object",
        "snapshot_id",
        "at",
        "record_id",
        "older",
        "newer",
        "restore_id",
        "run_id",
        "mode",
        "target",
        "count",
        "dry_run",
        "status",
        "ok",
        "where",
        "fields",
        "ids",
        "full",
        "request_id",
        "error",
    }
)


class AuditLog:
    """Writes audit lines. ``sink`` receives each line (default: the ``orgvault.audit`` logger)."""

    def __init__(self, sink: Callable[[str], None] | None = None) -> None:
        self._logger = logging.getLogger(AUDIT_LOGGER)
        self._sink = sink

    def record(
        self, action: str, principal: Principal | None, org: str | None, outcome: str = "ok", **details: Any
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "audit": True,
            "time": datetime.now(UTC).isoformat(),
            "action": action,
            "org": org,
            "outcome": outcome,
            "principal": principal.audit_identity() if principal else None,
        }
        for k, v in details.items():
            if k in ALLOWED_DETAILS and v is not None:
                entry[k] = _scalar(v)
        line = json.dumps(entry, sort_keys=True, default=str)
        if self._sink is not None:
            self._sink(line)
        else:
            self._logger.info(line)
        return entry


def _scalar(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return [str(x)[:100] for x in list(v)[:50]]
    if isinstance(v, bool | int | float):
        return v
    return str(v)[:500]
