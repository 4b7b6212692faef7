"""The restore step of ``orgvault demo``: delete an account with its children and put it back; blank a
field on many records and revert it. Returns a summary with ``ok`` (everything back as backed up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orgvault.domain.restore_plan import RestoreMode, values_equal
from orgvault.services.restore import RestoreRequest
from orgvault.services.restore_journal import JobStatus


def demo_restore(app: Any, org_name: str, emu_org: Any, say: Callable[[str], None]) -> dict[str, Any]:
    from orgvault.cli_restore import make_restore_service

    snap = app.catalog.head_snapshot(org_name)
    accounts = list(emu_org.true_records("Account", include_blobs=False))
    contacts = list(emu_org.true_records("Contact", include_blobs=False))
    by_acc: dict[str, list[dict]] = {}
    for c in contacts:
        if c.get("AccountId"):
            by_acc.setdefault(c["AccountId"], []).append(c)
    victim = max(accounts, key=lambda a: len(by_acc.get(a["Id"], [])))
    kids = by_acc.get(victim["Id"], [])
    for c in kids:
        emu_org.delete("Contact", c["Id"])
    emu_org.delete("Account", victim["Id"])
    say(f"  deleted account {victim['Name']!r} and its {len(kids)} contacts")

    svc, _ = make_restore_service(app, org_name)
    dry = svc.run(
        RestoreRequest(
            org=org_name,
            object_name="Account",
            ids=(victim["Id"],),
            with_children=True,
            snapshot_id=snap.snapshot_id,
            dry_run=True,
        )
    )
    say(f"  dry run: {len(dry.planned)} writes planned, e.g. {dry.planned[0].line()[:100]}")
    svc, _ = make_restore_service(app, org_name)
    rep = svc.run(
        RestoreRequest(
            org=org_name,
            object_name="Account",
            ids=(victim["Id"],),
            with_children=True,
            snapshot_id=snap.snapshot_id,
        )
    )
    for r in rep.results:
        if not r.success:
            say(f"  FAILED {r.operation} {r.object_name} {r.source_id}: {'; '.join(r.errors)}")
    new_acc = rep.id_map.get(victim["Id"][:15], "")
    back = [c for c in emu_org.true_records("Contact", include_blobs=False) if c.get("AccountId") == new_acc]
    failed = [r for r in rep.results if not r.success]
    # every contact is back, or Salesforce refused it with a per-record reason (shown above)
    ok1 = (
        rep.status is JobStatus.COMPLETED
        and bool(new_acc)
        and len(back) + sum(1 for r in failed if r.object_name == "Contact") == len(kids)
        and all(r.errors for r in failed)
    )
    say(
        f"  recreate-deleted: job {rep.job_id} {rep.status}, {sum(r.success for r in rep.results)} records written"
        f" ({rep.api_calls} API calls); account is back as {new_acc} with {len(back)} of its {len(kids)} contacts"
        + (f"; {len(failed)} records refused by the org (see above)" if failed else "")
    )

    # (the account re-created above has a new id the backup does not know: leave it out)
    sample = [
        a
        for a in emu_org.true_records("Account", include_blobs=False)
        if a.get("Industry") and a["Id"] != new_acc
    ][:200]
    for a in sample:
        emu_org.update("Account", a["Id"], {"Industry": None})
    say(f"  blanked Industry on {len(sample)} accounts (a bad data load)")
    svc, _ = make_restore_service(app, org_name)
    rev = svc.run(
        RestoreRequest(
            org=org_name,
            object_name="Account",
            mode=RestoreMode.REVERT_FIELDS,
            snapshot_id=snap.snapshot_id,
            fields=("Industry",),
        )
    )
    now = {a["Id"]: a for a in emu_org.true_records("Account", include_blobs=False)}
    ok2 = rev.status is JobStatus.COMPLETED and all(
        values_equal(now[a["Id"]]["Industry"], a["Industry"]) for a in sample if a["Id"] in now
    )
    say(
        f"  revert-fields: job {rev.job_id} {rev.status}, {sum(r.success for r in rev.results)} records reverted"
        f" ({rev.api_calls} API calls): " + ("all back" if ok2 else "MISMATCH")
    )
    return {
        "ok": ok1 and ok2,
        "refused": len(failed),
        "recreated": sum(r.success for r in rep.results),
        "recreate_api_calls": rep.api_calls,
        "reverted": sum(r.success for r in rev.results),
        "revert_api_calls": rev.api_calls,
    }
