"""Restores through the API: every restore is planned (a dry run) first and executes only when approved.

Contract:
- :meth:`RestoreDesk.plan` runs the dry run (reads the backup and the target, writes nothing to
  Salesforce) and records a restore job whose request is pinned to the resolved snapshot, with the
  plan, its author and ``approval: pending``, in the org's encrypted restore journal.
- :meth:`RestoreDesk.approve` appends an approval entry (exactly one approval wins, even when two
  callers race: the entry is write-once and re-read) and hands the job to the task runner, which runs
  it with :class:`RestoreService` (resumable, journalled). Approving twice is a ``Conflict``.
- Status: ``awaiting-approval`` until approved, then the journal's job status.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orgvault.api.errors import Conflict
from orgvault.domain.models import OrgConnection
from orgvault.domain.restore_plan import RestoreMode
from orgvault.services.browse import Snapshots
from orgvault.services.restore import RestoreReport, RestoreRequest, RestoreService
from orgvault.services.restore_journal import RestoreJournal, new_job_id

PLAN_SHOWN = 1000
AWAITING = "awaiting-approval"

WriterFactory = Callable[[OrgConnection], Any]


@dataclass(frozen=True)
class RestoreView:
    org: str
    restore_id: str
    status: str
    request: dict[str, Any]
    requested_by: str
    approved_by: str | None
    message: str
    counts: dict[str, int]
    planned: list[dict[str, Any]]
    planned_total: int
    results: list[dict[str, Any]]


def default_writer_factory(app: Any) -> WriterFactory:
    def make(conn: OrgConnection) -> Any:
        from orgvault.adapters.salesforce_writer import SalesforceWriter

        return SalesforceWriter(app.source_for(conn))

    return make


class RestoreDesk:
    def __init__(self, app: Any, writer_factory: WriterFactory | None = None) -> None:
        self.app = app
        self.writer_factory = writer_factory or default_writer_factory(app)

    def _journal(self, org: str) -> RestoreJournal:
        conn = self.app.catalog.get_org(org)
        return RestoreJournal(self.app.store, self.app.keys, org, conn.key_ref)

    def _service(self, org: str, target: str | None, journal: RestoreJournal | None) -> RestoreService:
        conn = self.app.catalog.get_org(org)
        target_conn = self.app.catalog.get_org(target) if target else conn
        return RestoreService(
            Snapshots(self.app.catalog, self.app.vault),
            self.writer_factory(target_conn),
            journal,
            key_ref=conn.key_ref,
        )

    # --- plan ------------------------------------------------------------------------------------------

    def plan(self, request: RestoreRequest, requested_by: str) -> RestoreView:
        dry = RestoreRequest.from_json({**request.to_json(), "dry_run": True})
        report: RestoreReport = self._service(request.org, request.target, None).run(dry)
        pinned = RestoreRequest.from_json(
            {**request.to_json(), "snapshot_id": report.snapshot_id, "at": None, "dry_run": False}
        )
        planned = [
            {
                "object": p.object_name,
                "operation": p.operation,
                "source_id": p.source_id,
                "target_id": p.target_id,
                "fields": dict(p.values),
            }
            for p in report.planned
        ]
        journal = self._journal(request.org)
        job_id = new_job_id()
        journal.append(
            job_id,
            0,
            "job",
            {
                "request": pinned.to_json(),
                "created_at": datetime.now(UTC).isoformat(),
                "api": {
                    "approval": "pending",
                    "requested_by": requested_by,
                    "planned": planned[:PLAN_SHOWN],
                    "planned_total": len(planned),
                    "counts": report.counts(),
                },
            },
        )
        return self.get(request.org, job_id)

    # --- read ------------------------------------------------------------------------------------------

    def list_ids(self, org: str) -> list[str]:
        return list(reversed(self._journal(org).list_jobs()))  # newest first

    def get(self, org: str, restore_id: str) -> RestoreView:
        journal = self._journal(org)
        state = journal.load(restore_id)  # UnknownRestoreJob when absent
        api: dict[str, Any] = {}
        approved_by: str | None = None
        counts: dict[str, int] = {}
        for _seq, e in journal.entries(restore_id):
            if e.get("kind") == "job":
                api = dict(e.get("api") or {})
            elif e.get("kind") == "approval" and approved_by is None:
                approved_by = str(e.get("approved_by") or "")
            elif e.get("kind") == "status" and isinstance(e.get("counts"), dict):
                counts = {str(k): int(v) for k, v in e["counts"].items()}
        pending = api.get("approval") == "pending" and approved_by is None
        results = [dict(r, operation=op) for (op, _old), r in sorted(state.done.items())]
        if not counts:
            counts = dict(api.get("counts") or {}) if pending else _count(results)
        return RestoreView(
            org=org,
            restore_id=restore_id,
            status=AWAITING if pending else str(state.status),
            request=state.request,
            requested_by=str(api.get("requested_by") or ("cli" if not api else "")),
            approved_by=approved_by,
            message=state.message,
            counts=counts,
            planned=list(api.get("planned") or []),
            planned_total=int(api.get("planned_total") or 0),
            results=results,
        )

    # --- approve ---------------------------------------------------------------------------------------

    def approve(
        self, org: str, restore_id: str, approved_by: str, submit: Callable[[str, Callable[[], Any]], None]
    ) -> RestoreView:
        view = self.get(org, restore_id)
        if view.status != AWAITING:
            raise Conflict(
                f"restore {restore_id} is {view.status}; only a restore awaiting approval can be approved"
            )
        journal = self._journal(org)
        state = journal.load(restore_id)
        nonce = secrets.token_hex(8)
        seq = state.next_seq
        journal.append(
            restore_id,
            seq,
            "approval",
            {"approved_by": approved_by, "nonce": nonce, "at": datetime.now(UTC).isoformat()},
        )
        mine = dict(journal.entries(restore_id)).get(seq, {})
        if mine.get("kind") != "approval" or mine.get("nonce") != nonce:
            raise Conflict(f"restore {restore_id} was approved by someone else at the same time")
        target = state.request.get("target")
        svc = self._service(org, target, journal)
        submit(f"restore-{org}-{restore_id}", lambda: svc.run(job_id=restore_id))
        return self.get(org, restore_id)


def _count(results: list[dict[str, Any]]) -> dict[str, int]:
    c: dict[str, int] = {}
    for r in results:
        k = f"{r['operation']}:{'ok' if r.get('success') else 'failed'}"
        c[k] = c.get(k, 0) + 1
    return dict(sorted(c.items()))


def make_request(org: str, body: Any) -> RestoreRequest:
    """A :class:`RestoreRequest` from the API body (``models.RestoreCreate``)."""
    return RestoreRequest(
        org=org,
        object_name=body.object,
        mode=RestoreMode(body.mode),
        snapshot_id=body.snapshot_id,
        at=body.at,
        ids=tuple(body.ids),
        where=body.where,
        with_children=body.with_children,
        target=body.target,
        external_id_field=body.external_id_field,
        skip_missing_fields=body.skip_missing_fields,
        fields=tuple(body.fields),
        dry_run=True,
    )
